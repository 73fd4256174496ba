#!/usr/bin/env bash
# test/e2e/notify_per_call.sh: test/e2e/notify.sh again, on a throwaway cluster of its own
# WITHOUT leadintake in shared_preload_libraries, where each call notifies in its own
# transaction (notifier.c's fallback); scripts/test.sh's cluster preloads it (batched).
unset LEADINTAKE_TEST_DB
exec bash "$(dirname "${BASH_SOURCE[0]}")/notify.sh"
