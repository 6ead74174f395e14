package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// healthCollector exports relay.Health, read at each scrape:
//
//   - authrelay_clock_skew_seconds: this host's clock minus the server's
//     (positive: ahead), for the server furthest off among those a request
//     came from in the last minute; absent before the first request.
//   - authrelay_clock_skew_resolution_seconds: the half-width of the
//     interval that skew lies in (±0.5 s from one request, narrower as
//     requests arrive across the second).
//   - authrelay_clock_skew_rejected_total: requests dropped because their
//     issue time was beyond --max-clock-skew.
//   - authrelay_key_failures_total: requests not opened with the relay's
//     xkey (another xkey, or sealing on at one end only).
//   - authrelay_answers_rejected_total: answers the server reported
//     rejecting for their signing key (another issuer).
//   - authrelay_queue_group_member: 1 while the relay takes its share of
//     the logins, 0 while a key fault keeps it out.
type healthCollector struct {
	r Relay
}

var (
	descSkew = prometheus.NewDesc("authrelay_clock_skew_seconds",
		"This host's clock minus the server's, for the server furthest off (positive: this host is ahead).", nil, nil)
	descSkewResolution = prometheus.NewDesc("authrelay_clock_skew_resolution_seconds",
		"Half-width of the interval the measured clock skew lies in.", nil, nil)
	descSkewRejected = prometheus.NewDesc("authrelay_clock_skew_rejected_total",
		"Login requests dropped because their issue time was beyond --max-clock-skew of this host's clock.", nil, nil)
	descKeyFailures = prometheus.NewDesc("authrelay_key_failures_total",
		"Login requests the relay could not open with its xkey.", nil, nil)
	descAnswersRejected = prometheus.NewDesc("authrelay_answers_rejected_total",
		"Relay answers the server rejected for their signing key.", nil, nil)
	descQueueMember = prometheus.NewDesc("authrelay_queue_group_member",
		"1 while the relay takes its share of the logins, 0 while a key fault keeps it out of the queue group.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSkew, descSkewResolution, descSkewRejected,
		descKeyFailures, descAnswersRejected, descQueueMember} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.r.Health()
	if h.SkewKnown {
		ch <- prometheus.MustNewConstMetric(descSkew, prometheus.GaugeValue, h.Skew.Skew.Seconds())
		ch <- prometheus.MustNewConstMetric(descSkewResolution, prometheus.GaugeValue, h.Skew.Resolution.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(descSkewRejected, prometheus.CounterValue, float64(h.SkewRejected))
	ch <- prometheus.MustNewConstMetric(descKeyFailures, prometheus.CounterValue, float64(h.KeyFailures))
	ch <- prometheus.MustNewConstMetric(descAnswersRejected, prometheus.CounterValue, float64(h.AnswersRejected))
	member := 0.0
	if h.InQueueGroup {
		member = 1
	}
	ch <- prometheus.MustNewConstMetric(descQueueMember, prometheus.GaugeValue, member)
}
