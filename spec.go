// Package useremail holds the OpenAPI document the service is built from, so
// that the server can serve it byte for byte. The Go API lives in the
// packages below: gen (generated), server, store, signer, mail, address.
package useremail

import _ "embed"

// SpecYAML is openapi.yaml exactly as it is in the repository.
//
//go:embed openapi.yaml
var SpecYAML []byte
