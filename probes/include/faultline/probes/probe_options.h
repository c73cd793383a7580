// What `faultline-probe` is told on its command line (probes/README.md "The process"), and the
// pure parsing helpers behind it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/probes/health_policy.h"

namespace faultline::probes {

// A broker as clients see it: its id and its client (`ext`) listener.
struct BrokerTarget {
  BrokerId id;
  cluster::Endpoint client;
  friend bool operator==(const BrokerTarget&, const BrokerTarget&) = default;
};

struct ProbeOptions {
  std::vector<BrokerTarget> brokers;
  // The admin API (demote, promote, metadata): every controller of the quorum; requests go to
  // the active one.
  std::vector<cluster::Endpoint> controllers;
  std::chrono::milliseconds interval{1000};
  // One probe (connect + BrokerHealth) gives up after this; must be shorter than the interval so
  // a round never runs into the next. Zero: three quarters of the interval.
  std::chrono::milliseconds probe_timeout{0};
  // One controller request gives up after this (its attempts at every controller together).
  std::chrono::milliseconds controller_timeout{2000};
  // How often the controller's list of demoted brokers is read (operator demotions count against
  // the cap; demotions this prober's predecessor left are adopted at start).
  std::chrono::milliseconds controller_refresh{1000};
  HealthConfig health;
  std::string metrics_host = "0.0.0.0";
  uint16_t metrics_port = 0;             // 0: no exporter
  std::filesystem::path log_file;        // empty: stderr
  std::filesystem::path decisions_file;  // JSON Lines of decisions and held demotions; empty: none

  std::chrono::milliseconds effective_probe_timeout() const {
    return probe_timeout.count() > 0 ? probe_timeout : interval * 3 / 4;
  }
  // Empty when usable, else what is wrong (the health config's problems included).
  std::string validate() const;
};

// The latest a probe with these settings decides to demote a broker after a fault began, from its
// rules alone (not counting the controller's elections and the brokers applying them, ~50 ms):
// - unreachable: the first failing probe starts within one interval, and K failures in a row end
//   with the K-th probe's timeout: K·interval + timeout;
// - slow storage: more than half of the storage window slow at one canary sample per
//   `canary_interval` (a stuck fsync yields them no slower), read on the next round and judged the
//   round after: (window/2 + 1)·canary_interval + 2·interval.
std::chrono::milliseconds unreachable_demotion_bound(const ProbeOptions& options);
std::chrono::milliseconds slow_storage_demotion_bound(const ProbeOptions& options,
                                                      std::chrono::milliseconds canary_interval);

// "1=198.18.2.11:9092,2=198.18.2.12:9092" -> targets; nullopt (with `why`) on malformed input,
// a repeated id or an empty list.
std::optional<std::vector<BrokerTarget>> parse_broker_targets(std::string_view text,
                                                              std::string* why = nullptr);

// The `faultline-probe` command: parses argv, runs until SIGTERM/SIGINT. Exit codes: 0 after a
// signal, 2 on a usage error, 1 when it could not start (metrics port taken, log unwritable).
int probe_main(int argc, char** argv);

}  // namespace faultline::probes
