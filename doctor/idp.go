package doctor

import (
	"context"
	"sort"
	"time"

	"github.com/authrelay/authrelay/idp"
	"github.com/authrelay/authrelay/store"
)

// idpTimeout bounds the fetch of every provider's discovery document and
// keys.
const idpTimeout = 10 * time.Second

// checkIdentityProviders fetches each identity provider's discovery
// document and key set, as a relay does: a provider that cannot be reached
// refuses its users' logins (idp_unavailable). It is the one check whose
// traffic goes elsewhere than the server: to each provider's issuer and
// the jwks_uri its document names.
func (d *checker) checkIdentityProviders(ctx context.Context) {
	const check = "identity provider"
	db, err := store.OpenReadOnly(ctx, d.cfg.DatabasePath)
	if err != nil {
		return // the database check said why
	}
	list, err := db.IdentityProviders(ctx)
	db.Close()
	if err != nil {
		d.fail(check, "read the identity providers: %v", err)
		return
	}
	if len(list) == 0 {
		return
	}
	set, err := idp.NewSet(idp.Options{})
	if err != nil {
		d.fail(check, "%v", err)
		return
	}
	defer set.Close()
	ps := make([]idp.Provider, 0, len(list))
	for _, p := range list {
		q := idp.FromStored(p)
		if err := q.Validate(); err != nil {
			d.fail(check, "%v: its logins are refused; remove it with 'authrelay idp rm %s' and add it again", err, p.Name)
			continue
		}
		ps = append(ps, q)
	}
	if err := set.Update(ps); err != nil {
		d.fail(check, "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, idpTimeout)
	defer cancel()
	errs := set.Check(ctx)
	names := make([]string, 0, len(errs))
	for name := range errs {
		names = append(names, name)
	}
	sort.Strings(names)
	issuer := map[string]string{}
	for _, p := range ps {
		issuer[p.Name] = p.Issuer
	}
	for _, name := range names {
		if err := errs[name]; err != nil {
			d.fail(check, "%s (%s): %v: its users' logins are refused with idp_unavailable until it answers; check the issuer URL and that this host reaches it", name, issuer[name], err)
		} else {
			d.ok(check, "%s: discovery document and keys fetched from %s", name, issuer[name])
		}
	}
}
