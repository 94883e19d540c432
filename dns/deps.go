package dns

import (
	_ "github.com/alknet/alknet/core"
	_ "github.com/miekg/dns"
)
