// The mini-cluster of cluster/ inside a run's namespaces: topology, controller quorum and brokers
// under the supervisor. Shared by `cluster up` and `faultline run`.
//
// Addresses: controller K (c1..c5) 198.18.1.(1+K):9090 (int); broker N internal
// 198.18.1.(10+N):9093, client 198.18.2.(10+N):9092 (ext); metrics :9100 everywhere. The root
// namespace (the harness) has an address on both bridges, so clients in the harness reach both
// listeners. Those are the default plan's addresses; a run that starts while another is up takes
// the first free slot of 198.18.0.0/15 instead (pick_free_plan), so runs (parallel tests, a
// nightly matrix) can share a host.
//
// Ready means usable: a controller of the quorum is active and every broker is registered and
// unfenced.
//
// Lifecycle: up() builds everything or nothing; down() (or the destructor) heals the faults
// recorded as active in the run directory, stops every process and removes the network.
// Start/restart processes only from the thread that called up(): children die with that thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/chaos/cluster_definition.h"
#include "faultline/chaos/faults/adapters.h"
#include "faultline/chaos/faults/disk.h"
#include "faultline/chaos/faults/fault.h"
#include "faultline/chaos/faults/storage.h"
#include "faultline/chaos/journal.h"
#include "faultline/chaos/supervisor.h"
#include "faultline/chaos/topology.h"
#include "faultline/cluster/client/client.h"

namespace faultline::chaos {

struct ClusterShape {
  int brokers = 3;
  // The controller quorum: nodes c1..cN (N = 1, 3 or 5), node ids 0..N-1, every one a voter;
  // brokers, clients and the probe are given all of them and follow the active one. A cluster
  // definition starts one controller whatever this says.
  int controllers = 1;
  // controller.quorum.election.timeout.ms; the active controller replicates every tenth of it.
  std::chrono::milliseconds controller_election_timeout{1000};
  // Records between two snapshots of each controller's metadata log; 0 keeps the controller's
  // default (20000).
  int metadata_snapshot_records = 0;
  std::chrono::milliseconds session_timeout{3000};
  std::chrono::milliseconds heartbeat_interval{500};
  int min_insync_replicas = 2;
  std::chrono::milliseconds replica_lag_time_max{5000};
  bool unclean_leader_election = false;
  // auto.leader.rebalance's period; 0 keeps the controller's default (300 s).
  std::chrono::seconds leader_imbalance_check_interval{0};
  // Each broker's data directory on its own loop-mounted ext4 image and the broker in its own I/O
  // cgroup, so disk faults (throttle, stall) can target it.
  bool disks = false;
  // Each broker's data directory is a faultline-lazyfs mount (over <run>/data/<node>.backing, or
  // over the loop disk itself with `disks`), so storage faults (power-loss, torn-write,
  // disk-error, slow-fsync) can target it. The daemons run as supervised processes "<node>-fs".
  bool lazyfs = false;
  // The brokers' flush policy (faultline-broker --flush-policy): "every-batch", "interval:<ms>"
  // or "never"; empty: the broker's default (interval:1000).
  std::string flush_policy;
  // Every broker's storage canary (append+fsync in its data dir, read by the probe); unset: 200 ms
  // with the probe (a window of 20 samples is then 4 s), the broker's 1000 ms without; 0: off.
  std::optional<std::chrono::milliseconds> storage_canary_interval;
  // faultline-probe in the `probe` namespace (node "pr"): probes every broker's client listener
  // each interval and demotes/promotes brokers through the controller (probes/README.md). Its log
  // is the supervisor's pr.stderr, its decisions <logs>/probe-decisions.jsonl, its metrics :9100
  // on its ext address.
  bool probe = false;
  std::chrono::milliseconds probe_interval{200};
  std::vector<std::string> probe_args;  // more faultline-probe flags: {"--failures-to-demote", "2"}
  // Where faultline-controller, -broker and -probe are; empty: next to the running executable.
  std::filesystem::path binaries_dir;
  // Another Kafka-API cluster (or the mini-cluster described the same way), started from its
  // definition's command templates instead of the built-in mini-cluster (cluster_definition.h).
  std::optional<ClusterDefinition> definition;
};

class ClusterHarness {
 public:
  // Exit-code class of a failed up(): 3 when the host lacks a capability, else 4.
  struct UpError {
    int exit_code = 4;
    std::string why;
  };
  // Process logs go to `logs_dir`; when it is given, the run's state directory (journal) is
  // also removed after a clean down(), since nothing in it is needed any more.
  static std::unique_ptr<ClusterHarness> up(const ClusterShape& shape, const std::string& run_id,
                                            UpError& error,
                                            const std::filesystem::path& logs_dir = {});
  ~ClusterHarness();
  ClusterHarness(const ClusterHarness&) = delete;
  ClusterHarness& operator=(const ClusterHarness&) = delete;

  std::error_code down();

  const std::filesystem::path& run_dir() const { return run_dir_; }
  const std::string& run_id() const { return run_id_; }
  const std::string& prefix() const { return journal_->prefix(); }
  Journal& journal() { return *journal_; }
  Supervisor& supervisor() { return *supervisor_; }
  const Topology& topology() const { return *topology_; }
  FaultTopology fault_topology() const;
  cluster::ClientConfig client_config() const;
  // Every controller's endpoint, comma-separated in node order (c1, c2, ...); read it with
  // cluster::parse_endpoints.
  const std::string& controller_endpoint() const { return controller_endpoint_; }
  // Node id of controller `index` (1-based): "c1".
  static std::string controller_node(int index) { return "c" + std::to_string(index); }
  const std::vector<std::string>& bootstrap() const { return bootstrap_; }
  // The brokers' Kafka-protocol listeners, for Kafka clients (librdkafka's bootstrap.servers).
  std::vector<cluster::Endpoint> kafka_bootstrap() const { return kafka_bootstrap_; }
  // Node id of broker `id` ("b1").
  static std::string broker_node(int id) { return "b" + std::to_string(id); }
  // The probe's node id, and its decisions file (JSON Lines; ClusterShape::probe).
  static constexpr const char* kProbeNode = "pr";
  const std::filesystem::path& probe_decisions() const { return probe_decisions_; }

  // <run>/processes.json: node -> pid (null when not running), for other faultline processes.
  std::error_code write_processes();

  // Creates a topic: through the controller for the mini-cluster, with the definition's
  // [topic] create command otherwise. Empty on success, else why it failed.
  std::string create_topic(const std::string& topic, int partitions, int replication_factor);

  // Starts one node's process in its namespace and waits until `port` of `address` accepts.
  using StartNode =
      std::function<bool(const NodeInfo&, std::vector<std::string> argv, const std::string& address,
                         uint16_t port, std::chrono::seconds ready_timeout)>;

 private:
  ClusterHarness() = default;
  // Mounts a lazyfs over each broker's data directory (ClusterShape::lazyfs).
  bool mount_lazyfs(const ClusterShape& shape, const std::filesystem::path& data, UpError& error);
  // The mini-cluster's processes, and the ones of a cluster definition, then "every broker up".
  bool start_builtin(const ClusterShape& shape, const std::filesystem::path& data,
                     const StartNode& start, UpError& error);
  bool start_defined(const ClusterShape& shape, const std::filesystem::path& data,
                     const StartNode& start, UpError& error);
  // Runs a one-off command of a definition (setup, topic creation) to its end.
  std::string run_to_end(const std::string& name, std::vector<std::string> argv,
                         std::optional<std::string> netns, std::chrono::seconds timeout);

  std::string run_id_;
  std::filesystem::path run_dir_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<JournalRecorder> recorder_;
  std::vector<LoopDisk> disks_;
  std::vector<IoCgroup> cgroups_;
  std::vector<LazyFsMount> lazyfs_;
  std::map<std::string, NodeDisk> node_disks_;
  std::vector<std::string> processes_;
  std::string controller_endpoint_;
  std::vector<std::string> bootstrap_;
  std::vector<cluster::Endpoint> kafka_bootstrap_;
  std::filesystem::path probe_decisions_;
  ClusterShape shape_;  // as up() was given it (a definition's templates need its settings)
  bool down_ = false;
  bool remove_state_on_down_ = false;
};

}  // namespace faultline::chaos
