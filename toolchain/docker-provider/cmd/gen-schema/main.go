// Command gen-schema prints the Pulumi package schema of our bridged docker
// provider. build-docker-provider.sh embeds it into pulumi-resource-docker
// (the engine's GetSchema) and check_names.py compares its names with the
// pulumi-docker Python SDK.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"

	provider "tfbox.local/docker-provider"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gen-schema <version> <out.json> <terraform-provider-docker dir>")
		os.Exit(2)
	}
	info := provider.Provider(os.Args[1])
	// Descriptions come from the Terraform provider's docs/ (the bridge would
	// otherwise look for the module under its declared, unserved path).
	info.UpstreamRepoPath = os.Args[3]
	sink := diag.DefaultSink(os.Stderr, os.Stderr, diag.FormatOptions{Color: colors.Never})
	spec, err := tfgen.GenerateSchema(info, sink)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[2], out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
