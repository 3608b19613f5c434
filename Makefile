# Everyday recipes. `make help` lists them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/roomcast-target

.PHONY: help demo test generate lint fmt e2e bench-operator bench-recorder render test-chat bench-chat token

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

demo: ## render the example room's Kubernetes objects
	bash scripts/demo.sh

test: ## the whole suite, as CI runs it
	bash scripts/test.sh

generate: ## regenerate the CRD (crds/ and the chart's copy)
	cargo run -q -p roomcast-crds --bin crdgen crds/streamroom.yaml charts/roomcast/crds/streamroom.yaml

fmt: ## format the code
	cargo fmt --all

lint: ## fmt check + clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

e2e: ## end-to-end suite against ROOMCAST_E2E_KUBECONFIG
	cargo build -q -p roomcast-operator --bin roomcast-operator
	python3 -m pytest -rs tests/e2e

bench-operator: ## reconcile 1,000 rooms against the mock API server
	cargo bench -p roomcast-operator --bench reconcile_rooms

bench-recorder: ## recorder upload lag p50/p99 and spool catch-up (SESSION_SECS, OUTAGE_SECS)
	bash scripts/bench-recorder.sh

test-chat: ## chat: Rust tests + Node tests (official socket.io-client, real Redis and MongoDB-compatible server)
	cargo nextest run -p roomcast-chat -p roomcast-store
	cargo build -q -p roomcast-chat
	ROOMCAST_CHAT_BIN=$(CARGO_TARGET_DIR)/debug/roomcast-chat node --test --test-concurrency=1 tests/chat/test/*.test.mjs

bench-chat: ## chat: 1,000 clients, roomcast-chat vs Node socket.io 4.8
	bash scripts/bench-chat.sh

token: ## chat: mint a test token: make token KEY=file SUB=user-id NAME=name ROLE=viewer
	cargo run -q -p roomcast-chat -- mint-token --key-file $(KEY) --user $(SUB) --name "$(NAME)" --role $(or $(ROLE),viewer)
