// Self-contained HTML views of a verdict (inline SVG and CSS, no scripts, no network).
#pragma once

#include <faultline/checker/history.h>
#include <faultline/checker/kafka.h>
#include <faultline/checker/linearizability.h>

#include <string>

namespace faultline::checker {

// Text made safe for HTML element content and quoted attribute values (& < > " ').
std::string html_escape(std::string_view s);

// The failing partition on a per-process timeline (a valid or unknown history gets its summary):
// operations of the longest linearizable prefix numbered in linearization order, the op that
// cannot be placed highlighted, the rest greyed.
std::string render_linearizability_html(const History& history, const LinearizabilityResult& result,
                                        std::string_view title);

// The anomaly list, and the operations each anomaly involves on a per-process timeline with the
// nemesis events as vertical marks.
std::string render_kafka_html(const History& history, const KafkaResult& result,
                              std::string_view title);

}  // namespace faultline::checker
