package main

import (
	"os"
	"testing"
)

// TestQuietSDK: the SDK's logs are turned off only when Terraform shows no
// provider logs, and a level the user set for the SDK is kept.
func TestQuietSDK(t *testing.T) {
	sdk := []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK"}
	for _, c := range []struct {
		name string
		env  map[string]string
		want []string // the SDK variables after quietSDK, as sdk orders them ("-": unset)
	}{
		{"no logs shown", nil, []string{"off", "off", "off"}},
		{"TF_LOG", map[string]string{"TF_LOG": "trace"}, []string{"-", "-", "-"}},
		{"TF_LOG_PROVIDER", map[string]string{"TF_LOG_PROVIDER": "debug"}, []string{"-", "-", "-"}},
		{"this provider's", map[string]string{"TF_LOG_PROVIDER_FERRY": "debug"}, []string{"-", "-", "-"}},
		{"the user's SDK level", map[string]string{"TF_LOG_SDK_FRAMEWORK": "debug"}, []string{"off", "off", "debug"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range append([]string{"TF_LOG", "TF_LOG_PROVIDER", "TF_LOG_PROVIDER_FERRY"}, sdk...) {
				t.Setenv(v, "") // restored after the test
				os.Unsetenv(v)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			quietSDK()
			for i, v := range sdk {
				got, set := os.LookupEnv(v)
				if !set {
					got = "-"
				}
				if got != c.want[i] {
					t.Errorf("%s = %q, want %q", v, got, c.want[i])
				}
			}
		})
	}
}
