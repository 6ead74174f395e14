package accounts

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// stored is the permissions the Apply cases start from.
func stored() Permissions {
	return Permissions{
		Pub:  Rule{Allow: []string{"orders.>"}, Deny: []string{"orders.admin.>"}},
		Sub:  Rule{Allow: []string{"_INBOX.>"}, Deny: []string{"secret.>"}},
		Resp: &ResponsePermission{MaxMsgs: 2, TTL: time.Minute},
	}
}

func TestPermissionEditApply(t *testing.T) {
	cases := []struct {
		name    string
		edit    PermissionEdit
		want    func(p *Permissions) // changes stored() into the result
		wantErr string
	}{
		{name: "nothing given keeps everything", want: func(*Permissions) {}},
		{
			name: "each list given replaces only that list",
			edit: PermissionEdit{Pub: ptr([]string{"a", "b"}), DenySub: ptr([]string{"c"})},
			want: func(p *Permissions) { p.Pub.Allow = []string{"a", "b"}; p.Sub.Deny = []string{"c"} },
		},
		{
			name: "clears empty their lists",
			edit: PermissionEdit{ClearPub: true, ClearSub: true, ClearDenyPub: true, ClearDenySub: true},
			want: func(p *Permissions) { p.Pub, p.Sub = Rule{}, Rule{} },
		},
		{
			name: "a list given and another cleared",
			edit: PermissionEdit{Sub: ptr([]string{"x.>"}), ClearDenyPub: true},
			want: func(p *Permissions) { p.Sub.Allow = []string{"x.>"}; p.Pub.Deny = nil },
		},
		{name: "pub given and cleared", edit: PermissionEdit{Pub: ptr([]string{"a"}), ClearPub: true}, wantErr: "--pub and --clear-pub contradict each other"},
		{name: "sub given and cleared", edit: PermissionEdit{Sub: ptr([]string{"a"}), ClearSub: true}, wantErr: "--sub and --clear-sub contradict each other"},
		{name: "deny-pub given and cleared", edit: PermissionEdit{DenyPub: ptr([]string{"a"}), ClearDenyPub: true}, wantErr: "--deny-pub and --clear-deny-pub contradict each other"},
		{name: "deny-sub given and cleared", edit: PermissionEdit{DenySub: ptr([]string{"a"}), ClearDenySub: true}, wantErr: "--deny-sub and --clear-deny-sub contradict each other"},
		{
			name:    "a contradiction after a valid list still changes nothing",
			edit:    PermissionEdit{Pub: ptr([]string{"new.>"}), DenySub: ptr([]string{"a"}), ClearDenySub: true},
			wantErr: "--deny-sub and --clear-deny-sub",
		},
		{name: "no-responses removes the response permission", edit: PermissionEdit{ClearResp: true}, want: func(p *Permissions) { p.Resp = nil }},
		{name: "no-responses with allow-responses", edit: PermissionEdit{ClearResp: true, AllowResponses: ptr(true)}, wantErr: "--no-responses contradicts"},
		{name: "no-responses with resp-ttl", edit: PermissionEdit{ClearResp: true, RespTTL: ptr(time.Second)}, wantErr: "--no-responses contradicts"},
		{
			name: "resp-max changes only the maximum of the one there is",
			edit: PermissionEdit{RespMax: ptr(5)},
			want: func(p *Permissions) { p.Resp = &ResponsePermission{MaxMsgs: 5, TTL: time.Minute} },
		},
		{
			name: "resp-ttl changes only the ttl",
			edit: PermissionEdit{RespTTL: ptr(time.Hour)},
			want: func(p *Permissions) { p.Resp = &ResponsePermission{MaxMsgs: 2, TTL: time.Hour} },
		},
		{
			name: "allow-responses=false removes the one there is",
			edit: PermissionEdit{AllowResponses: ptr(false)},
			want: func(p *Permissions) { p.Resp = nil },
		},
		{name: "allow-responses=false with resp-max", edit: PermissionEdit{AllowResponses: ptr(false), RespMax: ptr(2)}, wantErr: "--allow-responses=false contradicts"},
		{name: "no-responses with allow-responses=false agree", edit: PermissionEdit{ClearResp: true, AllowResponses: ptr(false)}, want: func(p *Permissions) { p.Resp = nil }},
		{name: "an invalid subject is refused", edit: PermissionEdit{Sub: ptr([]string{"a..b"})}, wantErr: "subscribe allow subject"},
		{name: "a negative ttl is refused", edit: PermissionEdit{RespTTL: ptr(-time.Second)}, wantErr: "ttl must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := stored()
			err := c.edit.Apply(&p)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Apply: error %v, want one with %q", err, c.wantErr)
				}
				if !reflect.DeepEqual(p, stored()) {
					t.Errorf("a refused Apply changed the permissions to %+v", p)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := stored()
			c.want(&want)
			if !reflect.DeepEqual(p, want) {
				t.Errorf("Apply gave %+v (resp %+v), want %+v (resp %+v)", p, p.Resp, want, want.Resp)
			}
		})
	}
}

func TestPermissionEditResponsesFromNone(t *testing.T) {
	cases := []struct {
		name    string
		edit    PermissionEdit
		want    *ResponsePermission
		wantErr string
	}{
		{name: "allow-responses grants the server defaults", edit: PermissionEdit{AllowResponses: ptr(true)}, want: &ResponsePermission{}},
		{name: "with its limits", edit: PermissionEdit{AllowResponses: ptr(true), RespMax: ptr(3), RespTTL: ptr(time.Second)}, want: &ResponsePermission{MaxMsgs: 3, TTL: time.Second}},
		{name: "resp-max needs one", edit: PermissionEdit{RespMax: ptr(3)}, wantErr: "--resp-max and --resp-ttl need --allow-responses"},
		{name: "resp-ttl needs one", edit: PermissionEdit{RespTTL: ptr(time.Second)}, wantErr: "--resp-max and --resp-ttl need --allow-responses"},
		{name: "allow-responses=false grants none", edit: PermissionEdit{AllowResponses: ptr(false)}, want: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Permissions
			err := c.edit.Apply(&p)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Apply: error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !reflect.DeepEqual(p.Resp, c.want) {
				t.Errorf("Resp = %+v, want %+v", p.Resp, c.want)
			}
		})
	}
}

// TestPermissionEditCopiesLists: the result does not share the edit's
// slices, which belong to the caller (the command's flags).
func TestPermissionEditCopiesLists(t *testing.T) {
	pub := []string{"a.>"}
	var p Permissions
	if err := (PermissionEdit{Pub: &pub}).Apply(&p); err != nil {
		t.Fatal(err)
	}
	pub[0] = "changed"
	if got := p.Pub.Allow; !reflect.DeepEqual(got, []string{"a.>"}) {
		t.Errorf("Pub.Allow = %q after the caller changed its slice, want [a.>]", got)
	}
}

func TestPermissionEditNew(t *testing.T) {
	cases := []struct {
		name    string
		edit    PermissionEdit
		want    Permissions
		wantErr string
	}{
		{name: "nothing given grants nothing", want: Permissions{}},
		{
			name: "lists",
			edit: PermissionEdit{Pub: ptr([]string{"p"}), Sub: ptr([]string{"s"}), DenyPub: ptr([]string{"dp"}), DenySub: ptr([]string{"ds"})},
			want: Permissions{Pub: Rule{Allow: []string{"p"}, Deny: []string{"dp"}}, Sub: Rule{Allow: []string{"s"}, Deny: []string{"ds"}}},
		},
		{
			name: "responses with limits",
			edit: PermissionEdit{AllowResponses: ptr(true), RespMax: ptr(-1), RespTTL: ptr(time.Minute)},
			want: Permissions{Resp: &ResponsePermission{MaxMsgs: -1, TTL: time.Minute}},
		},
		{name: "a zero resp-max without allow-responses is no limit to refuse", edit: PermissionEdit{RespMax: ptr(0)}, want: Permissions{}},
		{name: "resp-max without allow-responses", edit: PermissionEdit{RespMax: ptr(2)}, wantErr: "--resp-max and --resp-ttl need --allow-responses"},
		{name: "resp-ttl with allow-responses=false", edit: PermissionEdit{AllowResponses: ptr(false), RespTTL: ptr(time.Second)}, wantErr: "need --allow-responses"},
		{name: "an invalid subject", edit: PermissionEdit{DenyPub: ptr([]string{"a.>.b"})}, wantErr: "publish deny subject"},
		{name: "a negative ttl", edit: PermissionEdit{AllowResponses: ptr(true), RespTTL: ptr(-time.Second)}, wantErr: "ttl must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.edit.New()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("New: error %v, want one with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("New = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestPermissionEditEmpty(t *testing.T) {
	if !(PermissionEdit{}).Empty() {
		t.Error("the zero edit is not Empty")
	}
	for _, e := range []PermissionEdit{
		{Pub: ptr([]string{"a"})}, {Sub: ptr([]string{"a"})}, {DenyPub: ptr([]string{"a"})}, {DenySub: ptr([]string{"a"})},
		{AllowResponses: ptr(false)}, {RespMax: ptr(0)}, {RespTTL: ptr(time.Duration(0))},
		{ClearPub: true}, {ClearSub: true}, {ClearDenyPub: true}, {ClearDenySub: true}, {ClearResp: true},
	} {
		if e.Empty() {
			t.Errorf("%+v is Empty, want not", e)
		}
	}
}

func TestConstraintEditCheck(t *testing.T) {
	cases := []struct {
		name    string
		edit    ConstraintEdit
		want    ConstraintEdit
		wantErr string
	}{
		{name: "nothing given"},
		{
			name: "canonical forms",
			edit: ConstraintEdit{Src: ptr([]string{"10.1.2.3/8", "192.0.2.7", "::ffff:192.0.2.8", "2001:db8::1/32"}), ConnTypes: ptr([]string{"websocket", " Mqtt "}), Roles: ptr([]string{"svc", "reader.v2"})},
			want: ConstraintEdit{Src: ptr([]string{"10.0.0.0/8", "192.0.2.7/32", "192.0.2.8/32", "2001:db8::/32"}), ConnTypes: ptr([]string{"WEBSOCKET", "MQTT"}), Roles: ptr([]string{"svc", "reader.v2"})},
		},
		{name: "clears alone", edit: ConstraintEdit{ClearRoles: true, ClearSrc: true, ClearConnTypes: true}, want: ConstraintEdit{ClearRoles: true, ClearSrc: true, ClearConnTypes: true}},
		{name: "a bad source network", edit: ConstraintEdit{Src: ptr([]string{"10.0.0.0/33"})}, wantErr: `--src: source network "10.0.0.0/33"`},
		{name: "a bad connection type", edit: ConstraintEdit{ConnTypes: ptr([]string{"udp"})}, wantErr: `--conn-type: connection type "udp": want one of STANDARD`},
		{name: "a bad role name", edit: ConstraintEdit{Roles: ptr([]string{"9lives"})}, wantErr: `--role: role name "9lives" must start with a letter`},
		{name: "the source network is checked first", edit: ConstraintEdit{Src: ptr([]string{"x"}), ConnTypes: ptr([]string{"y"}), Roles: ptr([]string{"9"})}, wantErr: "--src:"},
		{name: "role given and cleared", edit: ConstraintEdit{Roles: ptr([]string{"svc"}), ClearRoles: true}, wantErr: "--role and --clear-roles contradict each other"},
		{name: "src given and cleared", edit: ConstraintEdit{Src: ptr([]string{"10.0.0.0/8"}), ClearSrc: true}, wantErr: "--src and --clear-src contradict each other"},
		{name: "conn-type given and cleared", edit: ConstraintEdit{ConnTypes: ptr([]string{"STANDARD"}), ClearConnTypes: true}, wantErr: "--conn-type and --clear-conn-types contradict each other"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.edit.Check()
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("Check: error %v, want one starting %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Check = %s, want %s", editText(got), editText(c.want))
			}
		})
	}
}

// TestConstraintEditCheckLeavesTheCallersLists: Check returns new lists,
// it does not rewrite the caller's.
func TestConstraintEditCheckLeavesTheCallersLists(t *testing.T) {
	src := []string{"10.1.2.3/8"}
	if _, err := (ConstraintEdit{Src: &src}).Check(); err != nil {
		t.Fatal(err)
	}
	if src[0] != "10.1.2.3/8" {
		t.Errorf("Check rewrote the caller's list to %q", src)
	}
}

func TestConstraintEditApply(t *testing.T) {
	before := User{Name: "bob", Account: "APP", Roles: []string{"svc"}, Src: []string{"10.0.0.0/8"}, ConnTypes: []string{ConnStandard}}
	cases := []struct {
		name string
		edit ConstraintEdit
		want func(u *User)
	}{
		{name: "nothing given keeps everything", want: func(*User) {}},
		{name: "roles replaced", edit: ConstraintEdit{Roles: ptr([]string{"a", "b"})}, want: func(u *User) { u.Roles = []string{"a", "b"} }},
		{name: "src replaced", edit: ConstraintEdit{Src: ptr([]string{"192.0.2.0/24"})}, want: func(u *User) { u.Src = []string{"192.0.2.0/24"} }},
		{name: "conn types replaced", edit: ConstraintEdit{ConnTypes: ptr([]string{ConnMQTT})}, want: func(u *User) { u.ConnTypes = []string{ConnMQTT} }},
		{
			name: "all cleared",
			edit: ConstraintEdit{ClearRoles: true, ClearSrc: true, ClearConnTypes: true},
			want: func(u *User) { u.Roles, u.Src, u.ConnTypes = nil, nil, nil },
		},
		{
			name: "one cleared, one replaced",
			edit: ConstraintEdit{ClearSrc: true, Roles: ptr([]string{"reader"})},
			want: func(u *User) { u.Src, u.Roles = nil, []string{"reader"} },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := before
			c.edit.Apply(&u)
			want := before
			c.want(&want)
			if !reflect.DeepEqual(u, want) {
				t.Errorf("Apply gave %+v, want %+v", u, want)
			}
		})
	}
}

func editText(e ConstraintEdit) string {
	list := func(p *[]string) string {
		if p == nil {
			return "nil"
		}
		return "[" + strings.Join(*p, " ") + "]"
	}
	return "roles " + list(e.Roles) + " src " + list(e.Src) + " conn " + list(e.ConnTypes)
}

func TestLimitEdit(t *testing.T) {
	before := Account{Name: "APP", Limits: AccountLimits{MaxConnections: 10, MaxSubs: 20, MaxPayload: 30}, JetStream: true,
		JetStreamLimits: JetStreamLimits{MaxMemory: 1 << 20, MaxStreams: 5}}
	cases := []struct {
		name    string
		edit    LimitEdit
		want    func(a *Account)
		wantErr string
	}{
		{name: "nothing given keeps everything", want: func(*Account) {}},
		{name: "one limit", edit: LimitEdit{MaxSubs: ptr(int64(500))}, want: func(a *Account) { a.Limits.MaxSubs = 500 }},
		{
			name: "0 removes a limit",
			edit: LimitEdit{MaxConnections: ptr(int64(0)), MaxPayload: ptr(int64(0))},
			want: func(a *Account) { a.Limits.MaxConnections, a.Limits.MaxPayload = 0, 0 },
		},
		{name: "jetstream off removes its limits", edit: LimitEdit{JetStream: ptr(false)}, want: func(a *Account) { a.JetStream, a.JetStreamLimits = false, JetStreamLimits{} }},
		{
			name: "jetstream limits",
			edit: LimitEdit{JSMaxMemory: ptr(int64(0)), JSMaxStorage: ptr(int64(1 << 40)), JSMaxConsumers: ptr(int64(9))},
			want: func(a *Account) {
				a.JetStreamLimits = JetStreamLimits{MaxStorage: 1 << 40, MaxStreams: 5, MaxConsumers: 9}
			},
		},
		{name: "a jetstream limit with jetstream off", edit: LimitEdit{JetStream: ptr(false), JSMaxStreams: ptr(int64(3))}, wantErr: "account APP: --js-max-streams is a JetStream limit, and JetStream is not enabled in the account: add --jetstream"},
		{name: "0 for a jetstream limit with jetstream off", edit: LimitEdit{JetStream: ptr(false), JSMaxStreams: ptr(int64(0))}, want: func(a *Account) { a.JetStream, a.JetStreamLimits = false, JetStreamLimits{} }},
		{name: "a negative jetstream limit", edit: LimitEdit{JSMaxMemory: ptr(int64(-1))}, wantErr: "--js-max-memory -1: give a number from 0 (no limit) to 9223372036854775807"},
		{name: "too many streams", edit: LimitEdit{JSMaxStreams: ptr(int64(1 << 31))}, wantErr: "--js-max-streams 2147483648"},
		{name: "a negative limit", edit: LimitEdit{MaxSubs: ptr(int64(-1)), JetStream: ptr(false)}, wantErr: "max subs -1: give a number from 0 (no limit) to 2147483647"},
		{name: "a limit too large", edit: LimitEdit{MaxPayload: ptr(int64(1 << 31))}, wantErr: "max payload 2147483648"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := before
			err := c.edit.Apply(&a)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Apply: error %v, want one with %q", err, c.wantErr)
				}
				if a != before {
					t.Errorf("a refused Apply changed the account to %+v", a)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := before
			c.want(&want)
			if a != want {
				t.Errorf("Apply gave %+v, want %+v", a, want)
			}
		})
	}
	if !(LimitEdit{}).Empty() {
		t.Error("the zero LimitEdit is not Empty")
	}
	for _, e := range []LimitEdit{{MaxConnections: ptr(int64(0))}, {MaxSubs: ptr(int64(0))}, {MaxPayload: ptr(int64(0))}, {JetStream: ptr(false)},
		{JSMaxMemory: ptr(int64(0))}, {JSMaxStorage: ptr(int64(0))}, {JSMaxStreams: ptr(int64(0))}, {JSMaxConsumers: ptr(int64(0))}} {
		if e.Empty() {
			t.Errorf("%+v is Empty, want not", e)
		}
	}
}
