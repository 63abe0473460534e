// Package doccheck holds no code, only a test: every package of the
// repository, and every exported name in its non-test Go files, has a doc
// comment that starts with that name (the rule the project's brief sets
// and DESIGN.md's habit 7 describes). `make test` runs it with the rest,
// so a new exported name without a comment fails CI.
package doccheck
