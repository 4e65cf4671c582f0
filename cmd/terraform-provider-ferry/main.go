// Command terraform-provider-ferry is ferry's Terraform provider (package
// provider), served over Terraform's plugin protocol 6. Run it with -debug
// to attach Terraform to it for debugging.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/ferry-pipelines/ferry/provider"
)

// version is set by the release build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	debug := flag.Bool("debug", false, "start the provider for a debugger; Terraform attaches with TF_REATTACH_PROVIDERS")
	flag.Parse()
	quietSDK()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/ferry-pipelines/ferry",
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}

// quietSDK turns the plugin SDK's own logs off when Terraform shows no
// provider logs (neither TF_LOG nor TF_LOG_PROVIDER* is set, and so not
// passed on to the plugin). The SDK logs every step of every call at TRACE
// and leaves the filtering to Terraform, which reads and parses each line:
// a plan of 2,000 resources spent most of its CPU, in both processes, on
// lines it then dropped. TF_LOG_SDK* set by the user are kept.
func quietSDK() {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TF_LOG=") || strings.HasPrefix(kv, "TF_LOG_PROVIDER") {
			return
		}
	}
	for _, v := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK"} {
		if _, set := os.LookupEnv(v); !set {
			os.Setenv(v, "off")
		}
	}
}
