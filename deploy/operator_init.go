package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/template"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
)

// OperatorName is the name of the operator 'init --operator' creates.
const OperatorName = "authrelay"

// newOperatorSecrets makes s an operator directory's secrets: fresh seeds
// for the operator and its signing key, the system account, the AUTH
// account (whose signing key becomes s.IssuerSeed, the response signer),
// the relay's and the admin's user nkeys, and each application account of
// names with its signing key. The relay and the admin log in with JWTs, so
// their passwords are cleared.
func newOperatorSecrets(s Secrets, names []string) (Secrets, error) {
	var err error
	ok := &OperatorKeys{Accounts: make(map[string]AccountSeeds, len(names))}
	for _, k := range []struct {
		dst    *string
		create func() (nkeys.KeyPair, error)
	}{
		{&ok.Operator, nkeys.CreateOperator},
		{&ok.OperatorSigning, nkeys.CreateOperator},
		{&ok.System, nkeys.CreateAccount},
		{&ok.SystemSigning, nkeys.CreateAccount},
		{&ok.Auth, nkeys.CreateAccount},
		{&s.IssuerSeed, nkeys.CreateAccount},
		{&ok.RelayUser, nkeys.CreateUser},
		{&ok.AdminUser, nkeys.CreateUser},
	} {
		if *k.dst, err = newSeed(k.create); err != nil {
			return Secrets{}, err
		}
	}
	for _, n := range names {
		var a AccountSeeds
		if a.Seed, err = newSeed(nkeys.CreateAccount); err != nil {
			return Secrets{}, err
		}
		if a.SigningSeed, err = newSeed(nkeys.CreateAccount); err != nil {
			return Secrets{}, err
		}
		ok.Accounts[n] = a
	}
	s.Operator = ok
	s.RelayPassword, s.AdminPassword = "", ""
	return s, nil
}

// newSeed creates a key with create and returns its seed.
func newSeed(create func() (nkeys.KeyPair, error)) (string, error) {
	kp, err := create()
	if err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	return string(seed), nil
}

// mustPub is publicKey for seeds this package made or checked.
func mustPub(seed string) string {
	pub, err := publicKey(seed)
	if err != nil {
		panic(fmt.Sprintf("deploy: a checked seed has no public key: %v", err))
	}
	return pub
}

// operatorSet is what an operator directory's server is configured with:
// the operator JWT, every account JWT by public key, and the default
// sentinel.
type operatorSet struct {
	info     OperatorInfo
	operator string
	accounts map[string]string
	sentinel string
}

// operatorJWTs signs the JWTs of the operator directory whose secrets are
// s, with the application accounts accts (whose seeds s holds): the
// operator's, self-signed and naming its signing key and the system
// account; every account's, signed by the operator's signing key and
// naming the account's own signing key; the AUTH account's with the
// authorization section (the relay's user in auth_users, every
// application account in allowed_accounts, the relay's xkey); and the
// default sentinel.
func operatorJWTs(s Secrets, accts []accounts.Account) (operatorSet, error) {
	ok := s.Operator
	okp, err := nkeys.FromSeed([]byte(ok.Operator))
	if err != nil {
		return operatorSet{}, fmt.Errorf("operator seed: %w", err)
	}
	osk, err := nkeys.FromSeed([]byte(ok.OperatorSigning))
	if err != nil {
		return operatorSet{}, fmt.Errorf("operator signing seed: %w", err)
	}
	xkey, err := accounts.NewXKey(s.XKeySeed)
	if err != nil {
		return operatorSet{}, err
	}
	sysPub, authPub := mustPub(ok.System), mustPub(ok.Auth)
	set := operatorSet{
		info: OperatorInfo{Mode: ModeOperator, Operator: mustPub(ok.Operator), SystemAccount: sysPub,
			AuthAccount: authPub, ResolverDir: ResolverDir},
		accounts: map[string]string{},
	}
	oc := jwt.NewOperatorClaims(set.info.Operator)
	oc.Name = OperatorName
	oc.SigningKeys.Add(mustPub(ok.OperatorSigning))
	oc.SystemAccount = sysPub
	if set.operator, err = oc.Encode(okp); err != nil {
		return operatorSet{}, fmt.Errorf("sign operator jwt: %w", err)
	}
	sign := func(ac *jwt.AccountClaims) error {
		j, err := ac.Encode(osk)
		if err != nil {
			return fmt.Errorf("sign account jwt %s: %w", ac.Name, err)
		}
		set.accounts[ac.Subject] = j
		return nil
	}

	sys := jwt.NewAccountClaims(sysPub)
	sys.Name = SystemAccount
	sys.SigningKeys.Add(mustPub(ok.SystemSigning))
	if err := sign(sys); err != nil {
		return operatorSet{}, err
	}

	auth := jwt.NewAccountClaims(authPub)
	auth.Name = AuthAccount
	auth.SigningKeys.Add(mustPub(s.IssuerSeed))
	auth.EnableExternalAuthorization(mustPub(ok.RelayUser))
	auth.Authorization.XKey = xkey.PublicKey()
	for _, a := range accts {
		seeds, held := ok.Accounts[a.Name]
		if !held {
			return operatorSet{}, fmt.Errorf("account %s: no seeds", a.Name)
		}
		pub := mustPub(seeds.Seed)
		auth.Authorization.AllowedAccounts.Add(pub)
		if err := sign(appAccountClaims(a, pub, mustPub(seeds.SigningSeed))); err != nil {
			return operatorSet{}, err
		}
	}
	if err := sign(auth); err != nil {
		return operatorSet{}, err
	}

	if set.sentinel, err = sentinelJWT(authPub, s.IssuerSeed); err != nil {
		return operatorSet{}, err
	}
	return set, nil
}

// sentinelJWT is the default sentinel: a bearer user of the AUTH account
// authPub that may do nothing, signed by its signing key authSigningSeed,
// handed by the server to every client that brings no JWT of its own, so
// that its username and password reach the relay.
func sentinelJWT(authPub, authSigningSeed string) (string, error) {
	sentinelUser, err := nkeys.CreateUser()
	if err != nil {
		return "", fmt.Errorf("create sentinel: %w", err)
	}
	upub, err := sentinelUser.PublicKey()
	if err != nil {
		return "", fmt.Errorf("create sentinel: %w", err)
	}
	uc := jwt.NewUserClaims(upub)
	uc.Name = "sentinel"
	uc.BearerToken = true
	uc.IssuerAccount = authPub
	uc.Pub.Deny.Add(accounts.AllSubjects)
	uc.Sub.Deny.Add(accounts.AllSubjects)
	ask, err := nkeys.FromSeed([]byte(authSigningSeed))
	if err != nil {
		return "", fmt.Errorf("auth signing seed: %w", err)
	}
	j, err := uc.Encode(ask)
	if err != nil {
		return "", fmt.Errorf("sign sentinel: %w", err)
	}
	return j, nil
}

// appAccountClaims are the claims of the application account a, whose
// public key is pub and whose users are signed by signingPub: its limits
// as the server enforces them from an account JWT (a zero limit of a is
// none), JetStream when a has it.
func appAccountClaims(a accounts.Account, pub, signingPub string) *jwt.AccountClaims {
	ac := jwt.NewAccountClaims(pub)
	ac.Name = a.Name
	ac.SigningKeys.Add(signingPub)
	lim := func(n int64) int64 {
		if n > 0 {
			return n
		}
		return jwt.NoLimit
	}
	ac.Limits.Conn = lim(a.Limits.MaxConnections)
	ac.Limits.Subs = lim(a.Limits.MaxSubs)
	ac.Limits.Payload = lim(a.Limits.MaxPayload)
	if a.JetStream {
		js := a.JetStreamLimits
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
			MemoryStorage: lim(js.MaxMemory), DiskStorage: lim(js.MaxStorage),
			Streams: lim(js.MaxStreams), Consumer: lim(js.MaxConsumers),
		}
	}
	return ac
}

// operatorConfData is what the operator nats.conf template needs.
type operatorConfData struct {
	Listen      string
	ConfPath    string
	TLS         TLSFiles
	JS          jetStreamConf
	Operator    string
	System      string
	ResolverDir string
	Sentinel    string
	Timeout     int
	Nsc         bool
}

var operatorConfTemplate = template.Must(template.New("nats.conf").Parse(`# nats.conf generated by 'authrelay init --operator'. A stock nats-server runs
# it unedited:
#
#   nats-server -c {{.ConfPath}}
#
# Operator (decentralized JWT) mode: the server trusts the operator below and
# takes every account from its JWT in the resolver. The AUTH account's JWT
# sends every login with no JWT of its own to authrelay (its authorization
# section: the relay's user in auth_users, the allowed accounts and the
# relay's xkey). Seeds live in secrets.json, never in this file.

listen: "{{.Listen}}"
server_name: "{{.JS.ServerName}}"

# JetStream, for the accounts whose JWT enables it, and for MQTT.
jetstream {
  store_dir: {{printf "%q" .JS.StoreDir}}
}
{{- if .JS.MQTTListen}}

mqtt {
  listen: "{{.JS.MQTTListen}}"
}
{{- end}}
` + tlsBlock + `

{{if .Nsc}}# The operator nsc manages (its JWT, from 'nsc describe operator --raw').{{else}}# The operator 'authrelay init --operator' created (its JWT).{{end}}
operator: {{.Operator}}
system_account: {{.System}}

{{if .Nsc}}# The account JWTs, one file per account. 'nsc push' sends changes through
# the system account; nobody is disconnected and no reload is needed.{{else}}# The account JWTs, one file per account. 'authrelay account add|set|rm'
# push changes through the system account; nobody is disconnected and no
# reload is needed.{{end}}
resolver {
  type: full
  dir: {{printf "%q" .ResolverDir}}
  allow_delete: true
  interval: "2m"
  timeout: "1.9s"
}

# Handed to every client that brings no user JWT (a username and password
# only): a bearer user of the AUTH account that may do nothing, so the
# login goes through authrelay, which places the client in its account.
default_sentinel: {{.Sentinel}}

authorization {
  # Seconds the server waits for the relay to answer a login.
  timeout: {{.Timeout}}
}
`))

// renderOperatorConf renders an operator directory's nats.conf.
func renderOperatorConf(set operatorSet, listen, confPath, resolverDir string, tls TLSFiles, js jetStreamConf) ([]byte, error) {
	var buf bytes.Buffer
	err := operatorConfTemplate.Execute(&buf, operatorConfData{
		Listen: listen, ConfPath: confPath, TLS: tls, JS: js,
		Operator: set.operator, System: set.info.SystemAccount, ResolverDir: resolverDir,
		Sentinel: set.sentinel, Timeout: AuthTimeoutSeconds, Nsc: set.info.NscManaged(),
	})
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", ServerConf, err)
	}
	return buf.Bytes(), nil
}

// operatorFiles are the files an operator directory adds to Init's, from
// its JWTs set: the nats.conf, operator.json and the resolver's account
// JWTs, as names relative to the directory.
func operatorFiles(l Layout, set operatorSet, listen string, tls TLSFiles, js jetStreamConf) (conf []byte, files map[string][]byte, err error) {
	resolver, err := filepath.Abs(l.Path(ResolverDir))
	if err != nil {
		return nil, nil, err
	}
	if conf, err = renderOperatorConf(set, listen, l.Path(ServerConf), resolver, tls, js); err != nil {
		return nil, nil, err
	}
	info, err := json.MarshalIndent(set.info, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	files = map[string][]byte{OperatorFile: append(info, '\n')}
	for pub, j := range set.accounts {
		files[filepath.Join(ResolverDir, pub+".jwt")] = []byte(j)
	}
	return conf, files, nil
}
