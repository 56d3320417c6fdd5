# SAM CLI / cfn-lint targets; included by the root Makefile.
#
#   make sam-venv   .sam-venv/ with aws-sam-cli and cfn-lint (pinned; only when missing/outdated)
#   make validate   sam validate --lint, then cfn-lint, then make/check_versions.py
#   make build      sam build (needs a python3.13 interpreter for the function builds)
#
# Neither validate nor build talks to AWS; dummy credentials and a region are
# set only so that the tools do not go looking for real ones.

SAM_MK_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)

SAM_CLI_VERSION ?= 1.170.0
CFN_LINT_VERSION ?= 1.58.0
SAM_VENV_PYTHON ?= python3
SAM_VENV := $(SAM_MK_ROOT)/.sam-venv
SAM_VENV_STAMP := $(SAM_VENV)/.installed-sam-$(SAM_CLI_VERSION)-cfn-lint-$(CFN_LINT_VERSION)
SAM := $(SAM_VENV)/bin/sam
CFN_LINT := $(SAM_VENV)/bin/cfn-lint
SAM_TEMPLATE := $(SAM_MK_ROOT)/template.yaml
SAM_PYTHON_VERSION := 3.13.0

SAM_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x SAM_CLI_TELEMETRY=0

.PHONY: sam-venv validate build

$(SAM_VENV_STAMP):
	test -x "$(SAM_VENV)/bin/pip" || $(SAM_VENV_PYTHON) -m venv "$(SAM_VENV)"
	"$(SAM_VENV)/bin/pip" install --quiet "aws-sam-cli==$(SAM_CLI_VERSION)" "cfn-lint==$(CFN_LINT_VERSION)"
	rm -f "$(SAM_VENV)"/.installed-sam-*
	touch "$@"

sam-venv: $(SAM_VENV_STAMP)

validate: $(SAM_VENV_STAMP)
	cd "$(SAM_MK_ROOT)" && $(SAM_ENV) "$(SAM)" validate --lint --template-file "$(SAM_TEMPLATE)"
	cd "$(SAM_MK_ROOT)" && $(SAM_ENV) "$(CFN_LINT)" -- "$(SAM_TEMPLATE)"
	cd "$(SAM_MK_ROOT)" && $(SAM_ENV) "$(SAM_VENV)/bin/python" make/check_versions.py

# sam build's python_pip workflow insists on a python3.13 on PATH (the
# functions' runtime); prefer pyenv's, else any python3.13 already on PATH.
build: $(SAM_VENV_STAMP)
	@py313="$$(pyenv prefix $(SAM_PYTHON_VERSION) 2>/dev/null)"; \
	if [ -n "$$py313" ] && [ -x "$$py313/bin/python3.13" ]; then \
		PATH="$$py313/bin:$$PATH"; \
	elif ! command -v python3.13 >/dev/null 2>&1; then \
		echo "error: sam build needs python3.13 (the Lambda runtime) on PATH;" \
			"install it (e.g. 'pyenv install $(SAM_PYTHON_VERSION)') and retry" >&2; \
		exit 1; \
	fi; \
	export PATH; \
	echo "sam build with $$(command -v python3.13)"; \
	cd "$(SAM_MK_ROOT)" && $(SAM_ENV) "$(SAM)" build --template-file "$(SAM_TEMPLATE)"
