//go:build tools

// Package tools pins the Pulumi CLI main package as a dependency of this module so that
// `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` resolves it with our go.mod/go.sum
// (`go install pkg@version` refuses modules with replace directives).
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
