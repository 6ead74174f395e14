// Package idp verifies the OpenID Connect and OAuth2 bearer tokens (JWTs)
// that clients present to authrelay instead of a password: ID tokens, and
// JWT access tokens (typ at+jwt, RFC 9068, such as the client-credentials
// grant gives services). It owns a provider's configuration (Provider),
// the fetching and caching of its keys, the checks on a token, and the
// mapping of its claims to an authrelay username and roles (Identity). It
// knows no SQL and no NATS: the relay builds a Verifier per provider row of
// the store (or one Set for all of them), calls Verify on a login that
// carries a token, and maps the error's Reason to its reason code.
//
// # What a token must pass
//
// In this order, each refusal an *Error with a Reason:
//
//   - at most MaxTokenSize bytes, a JWS in compact form with one signature;
//   - alg one of RS256/384/512, PS256/384/512, ES256/384/512, EdDSA. alg none
//     and the HMAC algorithms are refused before any key is looked at, so a
//     token "signed" with the provider's public key as an HMAC secret (alg
//     confusion) cannot verify, and no key of type oct is ever loaded;
//   - typ absent, JWT or at+jwt (with or without application/); a token of
//     another kind (logout+jwt, dpop+jwt) signed by the same key is refused;
//   - iss exactly the provider's issuer; aud holding its audience; exp
//     present and in the future (no leeway: the NATS session ends at exp);
//     nbf and iat not later than now plus Options.Leeway (default 30 s, at
//     most 5 min), on the injectable clock Options.Now. These are checked on
//     the still unverified claims, which are the signed bytes, so a token
//     they refuse costs no signature check and causes no key fetch;
//   - the signature, with the cached key of the token's kid whose type (and
//     alg, when the key names one) fits the token's alg; without a kid, each
//     cached key that fits;
//   - sub present; the username claim (sub by default, or email,
//     preferred_username, any string claim, or a dotted path into nested
//     objects) a valid authrelay username (accounts.ValidateName); the roles
//     claim, a string or an array of strings, mapped through RoleMap, values
//     it does not name ignored.
//
// The username claim must be one the provider does not let its users
// change: sub, or an email the provider verifies. With email, a token that
// says email_verified is not true is refused; preferred_username is
// editable by users at some providers and then names whoever set it last.
//
// Errors never hold the token, a signature or key material; a value read
// from a token (an issuer, a kid) is clipped and quoted, and an error from
// the provider's side is clipped to one escaped line.
//
// # Keys: what is cached and when it is fetched
//
// Each Verifier runs one goroutine that does all its network I/O. It fetches
// the discovery document (through go-oidc, which checks that the document
// names the configured issuer) and then the key set at its jwks_uri: at
// start, without making NewVerifier wait; again after a failure, with a
// delay growing from MinRefreshInterval to a minute; every RefreshInterval
// (default 15 min), so keys the provider dropped stop verifying; and when a
// caller asks, because a token's kid is not in the cache (key rotation).
// Discovery is fetched again only after a failed cycle.
//
// The key set in use is an immutable snapshot behind an atomic pointer: a
// token of a known kid is verified without a lock, a fetch or a wait, even
// while a fetch for another kid hangs. A failed refresh keeps the old keys,
// for at most MaxKeyAge (default 24 h) after they were fetched; after that
// the provider's tokens fail with ErrUnavailable.
//
// # Limits
//
//   - At most one fetch cycle per MinRefreshInterval (default 5 s) per
//     provider, whatever asks for it: a flood of tokens with invented kids
//     makes the provider see at most one key set request per interval.
//     Callers that ask while a cycle is pending or running share it.
//   - A caller waits for a cycle only when it will begin before the caller's
//     deadline (its context's, capped at MaxWait, default 2 s), and never
//     longer than that deadline; otherwise the token is refused at once
//     (unknown_key), and the cycle it asked for still runs when the interval
//     allows, so the next login with the new kid succeeds. After a failed
//     cycle callers do not wait at all: the provider is down, and they fail
//     at once with ErrUnavailable while the retries go on in the background.
//   - One HTTP request takes at most FetchTimeout (default 5 s); the default
//     transport bounds dialing, the TLS handshake and the response headers;
//     redirects are not followed; a document is read to at most
//     MaxDocumentSize bytes, a key set's keys to at most MaxKeys, RSA keys
//     under MinRSABits are skipped.
//   - Only the issuer's discovery document and the jwks_uri it names are
//     ever requested; both must be https, except to a loopback host.
//
// # Use from the relay
//
// A Set holds one Verifier per provider: Update with the store's provider
// rows at start and whenever they change (a provider whose name and issuer
// are unchanged keeps its cached keys), Verify with a token presented as
// the NATS token (the Set picks the provider by the token's iss and aud), or
// Set.Verifier(name).Verify when the user the client named is bound to a
// provider and sent the token as its password. errors.Is(err,
// ErrUnavailable) is idp_unavailable; any other refusal (ErrInvalidToken)
// is bad_credentials, with ReasonOf(err) for the log. Identity.Expiry caps
// the NATS session. Check is what doctor calls.
package idp
