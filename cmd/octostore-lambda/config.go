package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// The environment variables the bootstrap reads. envVars lists them all;
// template.yaml must set every one (TestTemplate checks it).
const (
	envRedisURL       = "REDIS_URL"
	envRedisCluster   = "REDIS_CLUSTER"
	envRedisPrefix    = "OCTOSTORE_REDIS_PREFIX"
	envMaxTTL         = "OCTOSTORE_MAX_TTL_SECONDS"
	envDefaultTTL     = "OCTOSTORE_DEFAULT_TTL_SECONDS"
	envMaxMetadata    = "OCTOSTORE_MAX_METADATA_BYTES"
	envMaxLocks       = "OCTOSTORE_MAX_LOCKS"
	envOpTimeout      = "OCTOSTORE_OP_TIMEOUT"
	envWaitReplicas   = "OCTOSTORE_REDIS_WAIT_REPLICAS"
	envGitHubClientID = "GITHUB_CLIENT_ID"
	envGitHubSecret   = "GITHUB_CLIENT_SECRET"
	envPublicURL      = "OCTOSTORE_PUBLIC_URL"
	envStateSecret    = "OCTOSTORE_STATE_SECRET"
	envGitHubBaseURL  = "GITHUB_BASE_URL"
	envGitHubAPIURL   = "GITHUB_API_URL"
)

// storeName is what GET /health reports as the store.
const storeName = "redis"

// defaultOpTimeout bounds one store operation when OCTOSTORE_OP_TIMEOUT is
// unset (as for the self-hosted binary).
const defaultOpTimeout = 3 * time.Second

// envVars is every configuration variable loadConfig reads
// (TestEnvVarsComplete keeps it exact). AWS_LAMBDA_RUNTIME_API is not among
// them: the Lambda service sets it.
var envVars = []string{
	envRedisURL, envRedisCluster, envRedisPrefix,
	envMaxTTL, envDefaultTTL, envMaxMetadata, envMaxLocks, envOpTimeout, envWaitReplicas,
	envGitHubClientID, envGitHubSecret, envPublicURL, envStateSecret,
	envGitHubBaseURL, envGitHubAPIURL,
}

// config is the bootstrap's whole configuration, read once at start-up.
// Unset variables take the defaults documented in README.md, "Deploy to AWS".
type config struct {
	// Redis is where locks and accounts live.
	Redis redisstore.Config
	// Limits bound the API's inputs (defaults lockcore.DefaultLimits).
	Limits lockcore.Limits
	// OAuth is the GitHub sign-in; the zero value (no client id or secret)
	// disables it.
	OAuth oauth.Config
}

// loadConfig reads the configuration through getenv (os.Getenv in
// production). It returns every problem found, joined, each naming its
// variable; no message contains the value of REDIS_URL or of a secret.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	var problems []error

	c.Redis.Server = true // restore can tell that the function uses the Redis
	c.Redis.URL = strings.TrimSpace(getenv(envRedisURL))
	if err := checkRedisURL(c.Redis.URL); err != nil {
		problems = append(problems, err)
	}
	if v := getenv(envRedisCluster); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s must be true or false (got %q)", envRedisCluster, v))
		}
		c.Redis.Cluster = b
	}
	c.Redis.Prefix = getenv(envRedisPrefix)
	if strings.ContainsAny(c.Redis.Prefix, "{}") {
		problems = append(problems, fmt.Errorf("%s must not contain '{' or '}' (they would break the per-account hash tag)", envRedisPrefix))
	}

	c.Redis.OpTimeout = defaultOpTimeout
	if v := strings.TrimSpace(getenv(envOpTimeout)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			problems = append(problems, fmt.Errorf("%s must be a positive duration such as 3s or 500ms (got %q)", envOpTimeout, v))
		} else {
			c.Redis.OpTimeout = d
		}
	}
	if n, ok := intVar(getenv, envWaitReplicas, &problems); ok {
		c.Redis.WaitReplicas = n
	}

	c.Limits = lockcore.DefaultLimits
	seconds := func(name string, dst *time.Duration) {
		// As int64, not int (intVar): lockcore.MaxTTLSeconds does not fit a 32-bit
		// int.
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange) && n > 0, err == nil && n > lockcore.MaxTTLSeconds:
			// It would wrap around to another TTL as a time.Duration.
			problems = append(problems, fmt.Errorf("%s must be at most %d seconds (got %s)", name, lockcore.MaxTTLSeconds, v))
		case err != nil || n < 0:
			problems = append(problems, fmt.Errorf("%s must be a non-negative integer (got %q)", name, v))
		default:
			*dst = time.Duration(n) * time.Second
		}
	}
	seconds(envMaxTTL, &c.Limits.MaxTTL)
	seconds(envDefaultTTL, &c.Limits.DefaultTTL)
	if n, ok := intVar(getenv, envMaxMetadata, &problems); ok {
		c.Limits.MaxMetadataBytes = n
	}
	if n, ok := intVar(getenv, envMaxLocks, &problems); ok {
		c.Limits.MaxHeldLocks = n
	}
	if err := c.Limits.Validate(); err != nil {
		problems = append(problems, fmt.Errorf("limits (%s, %s, %s, %s): %w", envMaxTTL, envDefaultTTL, envMaxMetadata, envMaxLocks, err))
	}

	c.OAuth = oauth.Config{
		ClientID:     strings.TrimSpace(getenv(envGitHubClientID)),
		ClientSecret: getenv(envGitHubSecret),
		PublicURL:    strings.TrimSpace(getenv(envPublicURL)),
		StateSecret:  []byte(getenv(envStateSecret)),
		BaseURL:      strings.TrimSpace(getenv(envGitHubBaseURL)),
		APIURL:       strings.TrimSpace(getenv(envGitHubAPIURL)),
	}
	if c.OAuth.Enabled() {
		if c.OAuth.ClientID == "" || c.OAuth.ClientSecret == "" {
			problems = append(problems, fmt.Errorf("GitHub sign-in needs both %s and %s (only one is set)", envGitHubClientID, envGitHubSecret))
		}
		if len(c.OAuth.StateSecret) < oauth.MinStateSecretLen {
			problems = append(problems, fmt.Errorf("%s must be at least %d bytes when GitHub sign-in is configured (got %d)", envStateSecret, oauth.MinStateSecretLen, len(c.OAuth.StateSecret)))
		}
		if c.OAuth.PublicURL == "" {
			problems = append(problems, fmt.Errorf("%s is required when GitHub sign-in is configured (the API's https origin, e.g. the stack's ApiUrl output)", envPublicURL))
		}
	}
	return c, errors.Join(problems...)
}

// intVar parses the optional non-negative integer variable name; ok is
// false when it is unset or bad (a bad value adds a problem).
func intVar(getenv func(string) string, name string, problems *[]error) (n int, ok bool) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		*problems = append(*problems, fmt.Errorf("%s must be a non-negative integer (got %q)", name, v))
		return 0, false
	}
	return n, true
}

// checkRedisURL checks the shape of REDIS_URL without ever quoting it (it
// may hold a password).
func checkRedisURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%s is required (redis://[user:password@]host:port[/db] or rediss:// for TLS)", envRedisURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a valid URL", envRedisURL)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("%s must start with redis:// or rediss:// (got scheme %q)", envRedisURL, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%s has no host", envRedisURL)
	}
	// A password whose '/', '?' or '#' was not percent-encoded: go-redis
	// would quote the rest of it in its error, or ignore a fragment and
	// let it be logged with the URL.
	if redisstore.PasswordCut(raw) {
		return fmt.Errorf("%s has an '@' or a '#' after its host: percent-encode a '/', '?' or '#' in the password (%%2F, %%3F, %%23)", envRedisURL)
	}
	return nil
}

// redactedRedisURL is REDIS_URL fit for a log line: the password replaced
// by "xxxxx", or "" when the URL does not parse or has a password cut
// short.
func redactedRedisURL(raw string) string {
	return redisstore.RedactedURL(raw, "")
}

// secrets returns the values that must never appear in a log line or an
// error report.
func (c config) secrets() []string {
	s := []string{c.Redis.URL, c.OAuth.ClientSecret, string(c.OAuth.StateSecret)}
	if u, err := url.Parse(c.Redis.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			_, escaped, _ := strings.Cut(u.User.String(), ":")
			s = append(s, p, escaped, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	return s
}

// scrub replaces every secret of c found in msg by "[redacted]".
func (c config) scrub(msg string) string {
	for _, s := range c.secrets() {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// deps returns the handler's dependencies over store.
func (c config) deps(store lockcore.Store, flow *oauth.Flow, logger *slog.Logger, version string) functions.Deps {
	return functions.Deps{
		Store:     store,
		StoreName: storeName,
		Limits:    c.Limits,
		Logger:    logger,
		Version:   version,
		OpTimeout: c.Redis.OpTimeout,
		OAuth:     flow,
	}
}
