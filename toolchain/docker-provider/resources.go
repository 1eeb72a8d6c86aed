// Package provider holds the ProviderInfo of tfbox's bridged docker provider.
package provider

import (
	"unicode"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/terraform-providers/terraform-provider-docker/shim"
)

// Tokens follow pulumi-docker: everything lives in module "index", and the
// token's middle part is the type name with a lower-case first letter, e.g.
// docker:index/remoteImage:RemoteImage.
func resourceToken(name string) tokens.Type {
	return tokens.Type("docker:index/" + lowerFirst(name) + ":" + name)
}

func functionToken(name string) tokens.ModuleMember {
	return tokens.ModuleMember("docker:index/" + lowerFirst(name) + ":" + name)
}

func lowerFirst(s string) string {
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// Provider maps the Terraform docker provider onto the names the pulumi-docker
// 5.1.0 SDKs use. Property names come from the bridge's default Terraform to
// Pulumi naming (snake_case to camelCase, lists pluralized, MaxItems=1 blocks
// flattened to one object); only the exceptions pulumi-docker declares are
// listed here. toolchain/docker-provider/check_names.py compares the result
// with the installed Python SDK.
func Provider(version string) tfbridge.ProviderInfo {
	prov := tfbridge.ProviderInfo{
		P:           shimv2.NewProvider(shim.NewProvider()),
		Name:        "docker",
		Version:     version,
		Description: "tfbox build of the Pulumi docker provider (Terraform docker provider, bridged)",
		Keywords:    []string{"pulumi", "docker"},
		License:     "Apache-2.0",
		Config: map[string]*tfbridge.SchemaInfo{
			"host": {
				Default: &tfbridge.DefaultInfo{
					Value:   "unix:///var/run/docker.sock",
					EnvVars: []string{"DOCKER_HOST"},
				},
			},
			// A list of blocks that the SDK names in the singular.
			"registry_auth": {
				Name:        "registryAuth",
				MaxItemsOne: tfbridge.False(),
			},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_container": {
				Tok: resourceToken("Container"),
				// A named container cannot coexist with its replacement.
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					// One command given as a list of words: not pluralized.
					"command": {Name: "command"},
					// Plural already in spirit; the SDK keeps this name.
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			"docker_image": {
				Tok: resourceToken("RemoteImage"),
				Fields: map[string]*tfbridge.SchemaInfo{
					"name": {Name: "name"},
				},
			},
			"docker_registry_image": {Tok: resourceToken("RegistryImage")},
			"docker_network":        {Tok: resourceToken("Network")},
			"docker_volume":         {Tok: resourceToken("Volume")},
			"docker_tag":            {Tok: resourceToken("Tag")},
			"docker_config":         {Tok: resourceToken("ServiceConfig")},
			"docker_secret":         {Tok: resourceToken("Secret")},
			"docker_service":        {Tok: resourceToken("Service")},
			"docker_plugin":         {Tok: resourceToken("Plugin")},
			"docker_buildx_builder": {Tok: resourceToken("BuildxBuilder")},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_registry_image":           {Tok: functionToken("getRegistryImage")},
			"docker_image":                    {Tok: functionToken("getRemoteImage")},
			"docker_network":                  {Tok: functionToken("getNetwork")},
			"docker_plugin":                   {Tok: functionToken("getPlugin")},
			"docker_logs":                     {Tok: functionToken("getLogs")},
			"docker_registry_image_manifests": {Tok: functionToken("getRegistryImageManifests")},
		},
	}
	// Resources with a "name" get an auto-name (<urn name>-<random>) when the
	// program gives none, as in pulumi-docker.
	prov.SetAutonaming(255, "-")
	return prov
}
