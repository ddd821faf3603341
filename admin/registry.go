package admin

import "github.com/prometheus/client_golang/prometheus"

// Registry is the admin app's Prometheus registry, for series of the jobs
// that run in this process.
func (s *Server) Registry() prometheus.Registerer { return s.registry }
