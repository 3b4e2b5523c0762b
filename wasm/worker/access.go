package main

// Who may spend the account's CPU. By default the front Worker answers
// anyone (any origin, no credential): every request bills CPU time to the
// account that deployed it. A deployer closes it with three independent
// settings (README, "Who may spend the account's CPU"):
//
//   - API_TOKEN (a Worker secret): /classify and /healthz require
//     "Authorization: Bearer <token>"; anything else is 401 JSON. The token
//     is compared in constant time (sha256 of both, then
//     subtle.ConstantTimeCompare, so that not even its length leaks).
//   - ALLOWED_ORIGINS (a variable, comma-separated): CORS grants only those
//     origins; a request from another origin is refused with 403 before
//     any work, and gets no Access-Control-Allow-Origin.
//   - the RATE_LIMITER binding (Cloudflare's rate limiting): a client (its
//     CF-Connecting-IP) over the limit gets 429 with Retry-After.
//
// Stage Workers have no public route (workers_dev and preview_urls are off
// in their generated configuration) and refuse any request that does not
// carry STAGE_KEY, a secret only the Workers of the pipeline hold (403).

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Limiter is a per-client rate limit (Cloudflare's rate-limiting binding).
type Limiter interface {
	// Limit counts one request of the client key and reports whether it
	// is within the limit.
	Limit(ctx context.Context, key string) (bool, error)
}

// Access configures who may use the front Worker.
type Access struct {
	APIToken string   // "": no token required
	Origins  []string // nil: any origin ("*")
	Limiter  Limiter  // nil: no rate limit
	// RatePeriod is the limiter's period in seconds (Retry-After).
	RatePeriod int
}

// parseOrigins reads ALLOWED_ORIGINS: origins separated by commas or
// spaces; empty (or "*") means any origin.
func parseOrigins(s string) []string {
	var out []string
	for _, o := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if o == "*" {
			return nil
		}
		out = append(out, strings.TrimSuffix(o, "/"))
	}
	return out
}

// sameSecret compares a presented secret with the configured one in
// constant time: both are hashed first, so the comparison does not depend
// on their lengths or contents.
func sameSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// cors sets the CORS answer headers for r. It reports false when r comes
// from an origin that is not allowed: the caller refuses it.
func (a *Access) cors(h http.Header, r *http.Request) bool {
	h.Set("Access-Control-Expose-Headers", "Content-Length, Retry-After")
	if a.Origins == nil {
		h.Set("Access-Control-Allow-Origin", "*")
		return true
	}
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-origin request
	}
	if slices.Contains(a.Origins, origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		return true
	}
	return false
}

// admit checks the token and the rate limit of a request (after CORS).
// It answers and returns false when the request may not go on.
func (a *Access) admit(w http.ResponseWriter, r *http.Request) bool {
	if a.APIToken != "" {
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="residual"`)
			writeError(w, http.StatusUnauthorized, "this Worker requires an API token: send Authorization: Bearer <token>", nil)
			return false
		}
		if !sameSecret(strings.TrimSpace(token), a.APIToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="residual", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "the API token is not valid", nil)
			return false
		}
	}
	if a.Limiter != nil {
		key := r.Header.Get("CF-Connecting-IP")
		if key == "" {
			key = r.RemoteAddr
		}
		ok, err := a.Limiter.Limit(r.Context(), key)
		if err != nil {
			// The limiter is down: refusing would make it a way to stop the
			// service, admitting keeps it a limit on the normal case.
			println("worker: rate limiter failed, admitting:", err.Error())
			ok = true
		}
		if !ok {
			period := max(a.RatePeriod, 1)
			w.Header().Set("Retry-After", strconv.Itoa(period))
			writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many requests from this client: try again in %d s", period),
				map[string]any{"retry_after": period})
			return false
		}
	}
	return true
}
