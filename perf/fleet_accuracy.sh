#!/usr/bin/env bash
# The sync interval's effect on a fleet's rate-limit accuracy: the accuracy test
# (tests/integration/fleet_test.cpp, a real etcd and Redis, 2 and 3 nodes, even and 90 % on
# one, 100/s and 10,000/s keys for 5 s each) once per --redis-sync-ms, its figures printed.
# A run whose figures leave ±10 % fails the test and says so; the figures are the point.
#
#   perf/fleet_accuracy.sh [INTERVALS="5 25 100 250 1000"]
set -uo pipefail
cd "$(dirname "$0")/.."
cmake --build build/test --target keygate keygate_integration_tests >/dev/null
for ms in ${INTERVALS:-5 25 100 250 1000}; do
  echo "== --redis-sync-ms $ms"
  KEYGATE_REDIS_SYNC_MS=$ms build/test/tests/keygate_integration_tests \
    --gtest_filter=Fleet.RateLimitsHoldWithinTenPercentOfOneKeygateOnTwoAndThreeNodes 2>&1 |
    grep -E "figures|FAILED  \]" | sed 's/^\[ figures  \] //'
done
