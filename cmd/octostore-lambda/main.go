// Command octostore-lambda is OctoStore's AWS Lambda bootstrap (the
// provided.al2023 custom runtime's "bootstrap" executable; see
// template.yaml and README.md, "Deploy to AWS").
//
// At start-up it reads its configuration from the environment (REDIS_URL
// and the rest of envVars), opens the Redis store and builds the API handler
// (functions.New) once; then it serves every invocation with that handler
// through the Lambda Runtime API: API Gateway HTTP API events (payload 2.0,
// stage $default or named), Lambda Function URL events, and API Gateway REST
// API events (payload 1.0). The request's context ends deadlineMargin
// (500 ms) before the invocation's deadline, so that a store call cut short
// still leaves time to send its 503.
//
// Bad or missing configuration fails the init phase: one JSON log line on
// stderr naming every problem, a report to the Runtime API's
// /runtime/init/error, and exit status 1. Redis not answering at start-up is
// not a configuration error: the function starts anyway, answers 503
// store_unavailable while Redis is away, and serves normally as soon as it
// answers. Neither REDIS_URL's password nor any other secret is ever logged.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/internal/buildinfo"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// initOpenTimeout bounds the first attempt to reach Redis during init
// (Lambda allows 10 s for the whole init phase).
const initOpenTimeout = 2 * time.Second

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, h, err := setup(context.Background(), os.Getenv, logger)
	if err != nil {
		failInit(logger, cfg, err)
	}
	lambda.Start(newProxy(h, logger).handle)
}

// setup reads the configuration, opens the store and returns the handler.
// Its error is a configuration error; cfg is returned even then, so the
// caller can scrub its secrets from the message.
func setup(ctx context.Context, getenv func(string) string, logger *slog.Logger) (config, http.Handler, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return cfg, nil, err
	}
	// go-redis' own lines (failed dials while Redis is away) as JSON too.
	redisstore.SetLogger(logger, cfg.scrub)
	store, reachable, err := openStore(ctx, cfg, logger)
	if err != nil {
		return cfg, nil, err
	}
	var flow *oauth.Flow
	if cfg.OAuth.Enabled() {
		if flow, err = oauth.New(cfg.OAuth, store, logger); err != nil {
			return cfg, nil, fmt.Errorf("GitHub sign-in: %w", err)
		}
	}
	version := buildinfo.Version()
	logger.Info("octostore-lambda ready",
		slog.String("version", version),
		slog.String("store", storeName),
		slog.String("redis", redactedRedisURL(cfg.Redis.URL)),
		slog.Bool("redis_cluster", cfg.Redis.Cluster),
		slog.Bool("redis_reachable", reachable),
		slog.Bool("github_sign_in", cfg.OAuth.Enabled()),
		slog.Int64("max_ttl_seconds", int64(cfg.Limits.MaxTTL/time.Second)),
		slog.Int("max_locks", cfg.Limits.MaxHeldLocks))
	return cfg, functions.New(cfg.deps(store, flow, logger, version)), nil
}

// openStore opens the Redis store. When Redis does not answer it returns a
// lazyStore that keeps trying on each request (reachable false); only a
// configuration error (a URL go-redis refuses) is returned as an error.
func openStore(ctx context.Context, cfg config, logger *slog.Logger) (store lockcore.Store, reachable bool, err error) {
	octx, cancel := context.WithTimeout(ctx, initOpenTimeout)
	defer cancel()
	s, err := redisstore.Open(octx, cfg.Redis)
	if err == nil {
		return s, true, nil
	}
	if !errors.Is(err, lockcore.ErrUnavailable) {
		return nil, false, fmt.Errorf("%s: %w", envRedisURL, err)
	}
	logger.Warn("redis does not answer at start-up; answering 503 store_unavailable until it does",
		slog.String("redis", redactedRedisURL(cfg.Redis.URL)),
		slog.String("error", cfg.scrub(err.Error())))
	return newLazyStore(func(ctx context.Context) (lockcore.Store, error) {
		return redisstore.Open(ctx, cfg.Redis)
	}), false, nil
}

// failInit logs err as one line, reports it to the Runtime API's init error
// endpoint when there is one, and exits with status 1.
func failInit(logger *slog.Logger, cfg config, err error) {
	msg := cfg.scrub(err.Error())
	report := "no runtime API"
	if api := os.Getenv("AWS_LAMBDA_RUNTIME_API"); api != "" {
		report = "reported"
		if rerr := reportInitError(api, msg); rerr != nil {
			report = "report failed: " + rerr.Error()
		}
	}
	logger.Error("octostore-lambda cannot start: bad configuration",
		slog.String("error", msg),
		slog.String("init_error", report))
	os.Exit(1)
}

// reportInitError posts msg to the Runtime API's /runtime/init/error.
func reportInitError(api, msg string) error {
	body, _ := json.Marshal(map[string]any{
		"errorMessage": msg,
		"errorType":    "Runtime.ConfigurationError",
		"stackTrace":   []string{},
	})
	req, err := http.NewRequest(http.MethodPost, "http://"+api+"/2018-06-01/runtime/init/error", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigurationError")
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("runtime API answered %s", resp.Status)
	}
	return nil
}
