# The Debian package, built by CPack's DEB generator (tools/package.sh): `cpack -G DEB` in a
# configured build directory makes danerelay_VERSION_ARCH.deb from what `cmake --install`
# installs with the prefix /usr: the programs (stripped), manual pages, README, the example, the
# systemd unit (/lib/systemd/system), the sysusers.d entry and /etc/danerelay/danerelay.toml (a
# conffile). The maintainer scripts beside this file make the account, the queue directory and
# the "not configured" marker, and enable the service without starting it (see postinst).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME danerelay)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "outbound SMTP relay with DANE")
set(CPACK_PACKAGE_CONTACT "danerelay maintainers <maintainers@users.noreply.r-seed-fb3db404.example>")
# CPack puts the summary first and indents the rest as the extended description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "danerelay is a smarthost: mail servers hand it their outgoing mail; it stores every
message durably in SQLite before it answers 250 and delivers it to each recipient
domain's MX with DNSSEC validated in-process and DANE (RFC 7672) enforced,
opportunistic for every domain and mandatory for the domains listed. MTA-STS,
TLS-RPT, RFC 3464 bounces, Postfix-style logs and Prometheus metrics.")
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Absolute destinations (/etc, /lib/systemd) and config/install_config.cmake need the real
# prefix at install time: CPack installs with DESTDIR set to its staging directory.
# (With DESTDIR, CPack installs with CPACK_INSTALL_PREFIX as the prefix.)
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# Libraries from dpkg-shlibdeps; besides them: the root trust anchor the configuration names,
# the tools postinst uses to make the account (systemd-sysusers, else adduser) and to enable
# the unit (deb-systemd-helper).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "dns-root-data, adduser | systemd, init-system-helpers")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${CMAKE_CURRENT_LIST_DIR}/conffiles;${CMAKE_CURRENT_LIST_DIR}/postinst;${CMAKE_CURRENT_LIST_DIR}/prerm;${CMAKE_CURRENT_LIST_DIR}/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Only what `cmake --install` puts in the package: no source package, no other generators.
set(CPACK_SOURCE_GENERATOR "")
include(CPack)
