package main

import (
	alknode "github.com/alknet/alknet/examples/node"
	"github.com/alknet/alknet/examples/node/plugins/call"
	"github.com/alknet/alknet/examples/node/plugins/callcmd"
	"github.com/alknet/alknet/examples/node/plugins/connect"
	"github.com/alknet/alknet/examples/node/plugins/creds"
	dnsplugin "github.com/alknet/alknet/examples/node/plugins/dns"
	"github.com/alknet/alknet/examples/node/plugins/echo"
	"github.com/alknet/alknet/examples/node/plugins/git"
	"github.com/alknet/alknet/examples/node/plugins/http"
	"github.com/alknet/alknet/examples/node/plugins/id"
	msgplugin "github.com/alknet/alknet/examples/node/plugins/msg"
	"github.com/alknet/alknet/examples/node/plugins/pipe"
	"github.com/alknet/alknet/examples/node/plugins/sftp"
	"github.com/alknet/alknet/examples/node/plugins/ssh"
	"github.com/alknet/alknet/examples/node/plugins/vault"
)

func main() { alknet().Main() }

// alknet is the node: every plugin, in order. The handlers' order is their ALPN
// preference order (alknet/echo, alknet/call, alknet/ssh, alknet/sftp, alknet/git,
// alknet/http, h2, http/1.1); the commands' order is the usage text's. The http plugin
// serves the call plugin's registry, the ssh plugin serves the sftp plugin's SSH
// subsystem and the git plugin's SSH git commands. opts
// configure the call plugin (tests add operations).
func alknet(opts ...call.Option) *alknode.Node {
	calls := call.New(opts...)
	files := sftp.New()
	repos := git.New()
	return &alknode.Node{
		Name: "alknet",
		Plugins: []alknode.Plugin{
			echo.New(), calls, ssh.New(ssh.WithSubsystem("sftp", files.SSHSubsystem), ssh.WithExec(repos.MatchExec, repos.StartExec)),
			files, repos, http.New(calls),
			dnsplugin.New(), // doq, alknet/dns and dot with a [dns] table; the pkarr relay on http's surface; the dns commands
			id.New(), pipe.New(), callcmd.New(), connect.New(), vault.New(),
			creds.New(),     // apikey new, peer add, token new
			msgplugin.New(), // alknet/msg after the others, and the msg commands
		},
	}
}
