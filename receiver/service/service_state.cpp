#include "receiver/service/service_state.h"

namespace deltasync {

void ServiceState::record_transfer(std::string line) {
  std::lock_guard guard(recent_mutex_);
  recent_.push_back(std::move(line));
  while (recent_.size() > 20) recent_.pop_front();
}

std::vector<std::string> ServiceState::recent_transfers() const {
  std::lock_guard guard(recent_mutex_);
  return {recent_.begin(), recent_.end()};
}

void ServiceState::record_poll(const std::string& reference, std::string line) {
  std::lock_guard guard(recent_mutex_);
  polls_[reference] = std::move(line);
}

std::vector<std::string> ServiceState::polls() const {
  std::lock_guard guard(recent_mutex_);
  std::vector<std::string> out;
  for (const auto& [reference, line] : polls_) out.push_back(line);
  return out;
}

void ServiceState::record_indexer(std::string line) {
  std::lock_guard guard(recent_mutex_);
  indexer_ = std::move(line);
}

std::string ServiceState::indexer() const {
  std::lock_guard guard(recent_mutex_);
  return indexer_;
}

}  // namespace deltasync
