# Front-end assets: builds service/static/vendor/ (git-ignored) from web/.
# Included by the top-level Makefile, which runs from the repository root.
#
#   make vendor         install web/ deps from package-lock.json and build (only when inputs changed)
#   make vendor-clean   remove the build output and web/node_modules
#
# Needs Node >= 20.19 and npm, and the npm registry; nothing is fetched at run time.

VENDOR_DIR    := service/static/vendor
VENDOR_STAMP  := $(VENDOR_DIR)/.built
VENDOR_INPUTS := web/package.json web/package-lock.json web/build.mjs web/check-vendor.mjs $(wildcard web/src/*) $(wildcard web/bpmnlint-plugin-step-pathways/*.js web/bpmnlint-plugin-step-pathways/*/*.js)

.PHONY: vendor vendor-clean

vendor: $(VENDOR_STAMP)

$(VENDOR_STAMP): $(VENDOR_INPUTS)
	@command -v npm >/dev/null 2>&1 || { echo "vendor: npm not found (need Node >= 20.19 with npm)" >&2; exit 1; }
	cd web && npm ci --ignore-scripts --include=dev --no-audit --no-fund
	cd web && node build.mjs ../$(VENDOR_DIR)
	touch $@

vendor-clean:
	rm -rf $(VENDOR_DIR) web/node_modules
