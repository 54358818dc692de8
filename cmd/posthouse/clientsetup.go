package main

import (
	"github.com/posthouse/posthouse/config"
)

// clientSetupWarnings says what keeps mail clients from setting themselves
// up with the configuration as it is: `admin dns` prints autoconfig and
// autodiscover records that point here, and check-config shows them too.
func clientSetupWarnings(cfg *config.Config) []string {
	var w []string
	switch {
	case cfg.Listen.HTTP == "" && cfg.Listen.HTTPS == "":
		w = append(w, "[listen] http and https are off: the autoconfig/autodiscover records lead Thunderbird and Outlook nowhere, "+
			"and users must type the settings (set http = \":80\" and https = \":443\")")
	case cfg.Listen.HTTPS == "":
		w = append(w, "[listen] https is off: Thunderbird finds its settings over http, but Outlook fetches them only over HTTPS "+
			"(set https = \":443\")")
	}
	if cfg.Listen.HTTPS != "" && !cfg.TLS.ACME && cfg.TLS.CertFile == "" {
		w = append(w, "https serves the self-signed certificate, which Outlook refuses without saying so and other clients "+
			"ask the user to accept: set [tls] acme = true or cert_file/key_file")
	}
	return w
}
