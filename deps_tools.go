//go:build tools

// Package octostore pins the project's chosen dependencies while the code
// that uses them is being written; removed once every one is imported.
package octostore

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/anishathalye/porcupine"
	_ "github.com/aws/aws-lambda-go/lambda"
	_ "github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	_ "github.com/chromedp/chromedp"
	_ "github.com/getkin/kin-openapi/openapi3filter"
	_ "github.com/getkin/kin-openapi/routers/legacy"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/swaggest/swgui/v5emb"
	_ "golang.org/x/oauth2"
	_ "modernc.org/sqlite"
)
