package keys

import "crypto"

var cryptoSHA256 = crypto.SHA256
