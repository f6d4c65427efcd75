#!/usr/bin/env bash
# ensure-chromium.sh: the headless browser the end-to-end tests drive (Debian's chromium package).
# BENEFITFLOW_CHROMIUM names another Chromium binary (the tests read the same variable).
exec "$(dirname "$0")/ensure-package.sh" BENEFITFLOW_CHROMIUM /usr/bin/chromium chromium "the browser tests' Chromium"
