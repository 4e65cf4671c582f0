// Command terraform-provider-ferry is ferry's Terraform provider (package
// provider), served over Terraform's plugin protocol 6. Run it with -debug
// to attach Terraform to it for debugging.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/ferry-pipelines/ferry/provider"
)

// version is set by the release build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	debug := flag.Bool("debug", false, "start the provider for a debugger; Terraform attaches with TF_REATTACH_PROVIDERS")
	flag.Parse()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/ferry-pipelines/ferry",
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
