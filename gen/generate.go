// Package gen holds the code generated from openapi.yaml by oapi-codegen: the
// API types, the strict Echo server interface with the embedded spec, and the
// Go client. Nothing here is written by hand; run `make generate`.
package gen

//go:generate go tool oapi-codegen -config cfg.yaml ../openapi.yaml
//go:generate go tool oapi-codegen -config ../client/cfg.yaml ../openapi.yaml
