#include "workload_client.h"

namespace faultline::chaos {

SendOutcome faultline_send_outcome(const cluster::SendResult& r) {
  SendOutcome out;
  if (r.acknowledged()) {
    out.outcome = checker::Outcome::ok;
    out.offset = r.base_offset.value();
    out.leader_epoch = r.leader_epoch.value();
    out.leader = r.leader.value();
    return out;
  }
  out.outcome = r.definite ? checker::Outcome::fail : checker::Outcome::info;
  out.error = std::string(cluster::errc_name(r.error));
  return out;
}

FaultlineWorkloadClient::FaultlineWorkloadClient(cluster::ClientConfig config, std::string topic)
    : client_(std::move(config)), topic_(std::move(topic)) {}

SendOutcome FaultlineWorkloadClient::send(int partition, const std::string& value, bool acks_all) {
  cluster::TopicPartition tp{topic_, cluster::PartitionIndex{partition}};
  return faultline_send_outcome(
      client_.send(tp, {value}, acks_all ? cluster::Acks::all : cluster::Acks::leader));
}

PollOutcome FaultlineWorkloadClient::poll(int partition, int64_t from,
                                          std::chrono::milliseconds max_wait, bool /*final_read*/) {
  // The final read needs nothing special here: a poll answers up to the high watermark, and the
  // workload polls again until nothing new comes back.
  cluster::TopicPartition tp{topic_, cluster::PartitionIndex{partition}};
  auto r = client_.poll(tp, cluster::Offset{from}, 1 << 20, max_wait);
  PollOutcome out;
  if (r.error != cluster::errc::none) {
    out.error = std::string(cluster::errc_name(r.error));
    return out;
  }
  out.records.reserve(r.records.size());
  for (auto& rec : r.records)
    out.records.emplace_back(rec.offset.value(), std::move(rec.value).value_or("0"));
  return out;
}

}  // namespace faultline::chaos
