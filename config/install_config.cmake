# Run by `cmake --install` (see config/CMakeLists.txt), so that paths follow the prefix given
# at install time (`cmake --install build --prefix DIR`):
#  - the configuration: the example file with the queue in the state directory, written only
#    when there is none yet (an existing one is never overwritten);
#  - the systemd unit, whose ExecStart names the installed daemon and configuration.
# For the prefixes /usr and /usr/local the configuration is /etc/danerelay/danerelay.toml (where
# both programs look without --config) and the queue /var/lib/danerelay; for any other prefix
# both live below it. The unit goes to /lib/systemd/system for the prefix /usr (where Debian 12's
# packages put units), else below the prefix. Paths are written below $DESTDIR when it is set
# (CPack's staging directory, tools/debian/package.cmake). Inputs: SOURCE_DIR (config/), PREFIX.
if(PREFIX STREQUAL "/usr" OR PREFIX STREQUAL "/usr/local")
  set(CONFIG_DIR "/etc/danerelay")
  set(STATE_DIR "/var/lib/danerelay")
else()
  set(CONFIG_DIR "${PREFIX}/etc/danerelay")
  set(STATE_DIR "${PREFIX}/var/lib/danerelay")
endif()
set(DANERELAY_INSTALLED_CONFIG "${CONFIG_DIR}/danerelay.toml")
set(CMAKE_INSTALL_FULL_SBINDIR "${PREFIX}/sbin")
set(CMAKE_INSTALL_FULL_DOCDIR "${PREFIX}/share/doc/danerelay")

set(target "$ENV{DESTDIR}${DANERELAY_INSTALLED_CONFIG}")
if(EXISTS "${target}")
  message(STATUS "Keeping the existing configuration: ${target}")
else()
  file(READ "${SOURCE_DIR}/danerelay.example.toml" text)
  string(REPLACE "path = \"data\"" "path = \"${STATE_DIR}\"" text "${text}")
  file(MAKE_DIRECTORY "$ENV{DESTDIR}${CONFIG_DIR}")
  file(WRITE "${target}" "${text}")
  message(STATUS "Installing the configuration: ${target}")
endif()

if(PREFIX STREQUAL "/usr")
  set(unit_dir "$ENV{DESTDIR}/lib/systemd/system")
else()
  set(unit_dir "$ENV{DESTDIR}${PREFIX}/lib/systemd/system")
endif()
file(READ "${SOURCE_DIR}/danerelay.service.in" unit)
string(CONFIGURE "${unit}" unit @ONLY)
file(MAKE_DIRECTORY "${unit_dir}")
file(WRITE "${unit_dir}/danerelay.service" "${unit}")
message(STATUS "Installing: ${unit_dir}/danerelay.service")
