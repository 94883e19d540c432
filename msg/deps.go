package msg

import _ "github.com/alknet/alknet/core"
