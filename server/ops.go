package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/useremail/useremail"
	"github.com/useremail/useremail/gen"
)

// GetHealth answers while the process serves requests.
func (s *Server) GetHealth(context.Context, gen.GetHealthRequestObject) (gen.GetHealthResponseObject, error) {
	return gen.GetHealth200JSONResponse{Status: gen.Ok}, nil
}

// GetReadiness answers 200 when the database answers, can take writes
// (store.CheckWrites) and has every migration applied, 503 otherwise.
func (s *Server) GetReadiness(ctx context.Context, _ gen.GetReadinessRequestObject) (gen.GetReadinessResponseObject, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.cfg.DB.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready: database", "error", err)
		return nil, errUnavailable
	}
	if err := s.cfg.DB.CheckWrites(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready: database cannot take writes", "error", err)
		return nil, errUnavailable
	}
	pending, err := s.cfg.DB.PendingMigrations(ctx)
	if err != nil || pending {
		s.log.WarnContext(ctx, "not ready: migrations", "pending", pending, "error", err)
		return nil, errUnavailable
	}
	return gen.GetReadiness200JSONResponse{Status: gen.Ok}, nil
}

// GetSpecYAML answers openapi.yaml byte for byte.
func (s *Server) GetSpecYAML(context.Context, gen.GetSpecYAMLRequestObject) (gen.GetSpecYAMLResponseObject, error) {
	return gen.GetSpecYAML200ApplicationyamlResponse{
		Body:          bytes.NewReader(useremail.SpecYAML),
		ContentLength: int64(len(useremail.SpecYAML)),
	}, nil
}

// GetSpecJSON answers the spec as JSON, as embedded in the generated code.
func (s *Server) GetSpecJSON(context.Context, gen.GetSpecJSONRequestObject) (gen.GetSpecJSONResponseObject, error) {
	spec, err := gen.GetSpecJSON()
	if err != nil {
		return nil, err
	}
	return rawJSON(spec), nil
}

// rawJSON writes JSON bytes as they are; the generated response type would
// decode and re-encode them.
type rawJSON []byte

func (r rawJSON) VisitGetSpecJSONResponse(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(r)
	return err
}

// GetMetrics answers the Prometheus metrics, or 404 when they are served
// on a listener of their own.
func (s *Server) GetMetrics(context.Context, gen.GetMetricsRequestObject) (gen.GetMetricsResponseObject, error) {
	if s.cfg.HideMetrics {
		return nil, errRouteNotFound
	}
	return metricsText{s.cfg.Metrics}, nil
}

type metricsText struct{ m Metrics }

func (r metricsText) VisitGetMetricsResponse(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.m == nil {
		_, err := io.WriteString(w, "# metrics are not configured\n")
		return err
	}
	return r.m.WriteText(w)
}
