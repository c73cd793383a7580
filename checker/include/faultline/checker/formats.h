// Readers for the two public history formats of shared/oracles/porcupine (Porcupine's test data):
// Jepsen's etcd log lines and Jepsen/Knossos-style EDN maps of a key-value store. Both produce the
// same History as the JSONL reader; times are line numbers (the files are in real-time order).
#pragma once

#include <faultline/checker/history.h>

namespace faultline::checker {

// `INFO  jepsen.util - <process> :<invoke|ok|fail|info> :<read|write|cas> <value>`
Expected<History, ParseError> parse_jepsen_etcd(std::string_view text, std::string_view file = "");

// `{:process N, :type :invoke|:ok, :f :get|:put|:append, :key "k", :value "v"|nil}`
Expected<History, ParseError> parse_porcupine_kv(std::string_view text, std::string_view file = "");

}  // namespace faultline::checker
