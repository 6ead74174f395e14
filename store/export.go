package store

import (
	"context"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// ExportDoc is the whole database as 'authrelay export --json' prints it:
// everything needed to recreate the accounts, roles and users, password
// hashes only on request. Every list is empty, never nil, when there is
// nothing in it.
type ExportDoc struct {
	Accounts []ExportAccount `json:"accounts"`
	Roles    []ExportRole    `json:"roles"`
	Users    []ExportUser    `json:"users"`
}

// ExportAccount is an account with its limits and its number of users.
type ExportAccount struct {
	accounts.Account
	Users int `json:"users"`
}

// ExportRole is a role with its permissions, templates unexpanded, and the
// users holding it, sorted.
type ExportRole struct {
	Name    string                       `json:"name"`
	Pub     accounts.Rule                `json:"pub"`
	Sub     accounts.Rule                `json:"sub"`
	Resp    *accounts.ResponsePermission `json:"resp"`
	Holders []string                     `json:"holders"`
}

// ExportUser is a user with its own permissions (not its roles') and,
// when asked for, its password hash (a PHC or MCF string). Expires is nil
// for a user that never expires.
type ExportUser struct {
	Name         string                       `json:"name"`
	Account      string                       `json:"account"`
	Disabled     bool                         `json:"disabled"`
	Expires      *time.Time                   `json:"expires"`
	Pub          accounts.Rule                `json:"pub"`
	Sub          accounts.Rule                `json:"sub"`
	Resp         *accounts.ResponsePermission `json:"resp"`
	Roles        []string                     `json:"roles"`
	Src          []string                     `json:"src"`
	ConnTypes    []string                     `json:"conn_types"`
	Created      time.Time                    `json:"created"`
	Updated      time.Time                    `json:"updated"`
	PasswordHash string                       `json:"password_hash,omitempty"`
}

// Export reads every account, role and user, each list sorted by name, and
// with withHashes each user's password hash. It never holds a plain
// password: none is stored. It reads with one query per table, not one
// per row; the queries do not share one snapshot, so an export taken
// while admins make changes may show a change in one list and not yet in
// another.
func (db *DB) Export(ctx context.Context, withHashes bool) (ExportDoc, error) {
	doc := ExportDoc{Accounts: []ExportAccount{}, Roles: []ExportRole{}, Users: []ExportUser{}}
	accts, err := db.AccountList(ctx)
	if err != nil {
		return doc, err
	}
	counts, err := db.AccountUserCounts(ctx)
	if err != nil {
		return doc, err
	}
	for _, a := range accts {
		doc.Accounts = append(doc.Accounts, ExportAccount{Account: a, Users: counts[a.Name]})
	}
	roles, err := db.Roles(ctx)
	if err != nil {
		return doc, err
	}
	holders, err := db.AllRoleHolders(ctx)
	if err != nil {
		return doc, err
	}
	for _, r := range roles {
		doc.Roles = append(doc.Roles, ExportRole{Name: r.Name, Pub: exportRule(r.Permissions.Pub), Sub: exportRule(r.Permissions.Sub),
			Resp: r.Permissions.Resp, Holders: exportList(holders[r.Name])})
	}
	users, err := db.Users(ctx)
	if err != nil {
		return doc, err
	}
	var hashes map[string]string
	if withHashes {
		if hashes, err = db.PasswordHashes(ctx); err != nil {
			return doc, err
		}
	}
	for _, u := range users {
		e := ExportUser{Name: u.Name, Account: u.Account, Disabled: u.Disabled, Pub: exportRule(u.Permissions.Pub),
			Sub: exportRule(u.Permissions.Sub), Resp: u.Permissions.Resp, Roles: exportList(u.Roles), Src: exportList(u.Src),
			ConnTypes: exportList(u.ConnTypes), Created: u.Created, Updated: u.Updated, PasswordHash: hashes[u.Name]}
		if !u.Expires.IsZero() {
			exp := u.Expires
			e.Expires = &exp
		}
		doc.Users = append(doc.Users, e)
	}
	return doc, nil
}

// exportList is l, or an empty list for nil: JSON shows [] rather than
// null.
func exportList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// exportRule is r with empty lists for nil ones.
func exportRule(r accounts.Rule) accounts.Rule {
	r.Allow, r.Deny = exportList(r.Allow), exportList(r.Deny)
	return r
}
