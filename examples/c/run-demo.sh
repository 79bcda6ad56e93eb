#!/bin/sh
# Builds softiommu, writes its C headers, compiles examples/c/iommufd_demo.c and
# runs it under the interposer with a trace of every iommufd call.
set -e
cd "$(dirname "$0")/../.."
cargo build --quiet && ./target/debug/softiommu headers target/include && cc -Wall -I target/include examples/c/iommufd_demo.c -o target/iommufd_demo && ./target/debug/softiommu run --trace -- target/iommufd_demo
