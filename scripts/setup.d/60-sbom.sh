# SBOM and vulnerability scanning (src/sbom, src/vulns).
# The code itself needs nothing beyond Node and better-sqlite3. The tests use
# real tools as oracles: rpm/rpmbuild build a real rpmdb.sqlite, python3's
# `packaging` cross-checks PEP 440 ordering, zstd compresses test layers, zip
# builds OSV export archives and umoci builds real OCI images with whiteouts
# (dpkg --compare-versions and GNU tar are part of every Debian system).
apt_need rpm python3-packaging zstd zip umoci

setup_60_sbom() {
  # Nothing to build or fetch: vulnerability data is loaded at run time with
  # `hangar vulndb update PATH|URL` (see docs/sbom-and-vulns.md).
  :
}
