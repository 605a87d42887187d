# Debian package "deltasync": both binaries, the systemd unit, example
# configurations, the certificate script and the docs.
#
#   cmake --build build --target deltasend deltarecvd
#   (cd build && cpack)                      -> build/deltasync_<version>_<arch>.deb
#
# Layout (Debian 12):
#   /usr/bin/deltasend, /usr/bin/deltarecvd   install(TARGETS) in sender/ and receiver/
#   /lib/systemd/system/deltarecvd.service     not /usr/lib: bookworm packages keep units in /lib
#   /etc/deltasync/deltarecvd.conf, deltasend.conf   conffiles (dpkg keeps local edits)
#   /usr/share/deltasync/make-certs.sh
#   /usr/share/doc/deltasync/                   deploy.md, README.md, bundle-format.md,
#                                               protocol.md, diff-image.md
#   /usr/share/bash-completion/completions/deltasend, deltarecvd   deploy/completion/
#   /usr/share/man/man1/deltasend*.1.gz, man8/deltarecvd*.8.gz      cmake/Manpages.cmake
#                                               (only when pandoc is installed)
# Maintainer scripts (deploy/debian/): enable deltarecvd.service but do not
# start it (it needs certificates and a config first); daemon-reload only
# when systemd runs. Package test: tests/deploy/package_test.sh.

set(_ds_deploy "${PROJECT_SOURCE_DIR}/deploy")

install(FILES "${_ds_deploy}/deltarecvd.service" DESTINATION /lib/systemd/system)
install(FILES "${_ds_deploy}/deltarecvd.conf" "${_ds_deploy}/deltasend.conf"
        DESTINATION /etc/deltasync)
# Written separately (deploy/make-certs.sh); packaged once it is there.
if(EXISTS "${_ds_deploy}/make-certs.sh")
  install(PROGRAMS "${_ds_deploy}/make-certs.sh" DESTINATION share/deltasync)
endif()
install(FILES "${PROJECT_SOURCE_DIR}/README.md" DESTINATION share/doc/deltasync)
foreach(_ds_doc IN ITEMS deploy.md bundle-format.md protocol.md diff-image.md)
  if(EXISTS "${PROJECT_SOURCE_DIR}/docs/${_ds_doc}")
    install(FILES "${PROJECT_SOURCE_DIR}/docs/${_ds_doc}" DESTINATION share/doc/deltasync)
  endif()
endforeach()
# bash completion, loaded on first use by the bash-completion package
# (tests/deploy/completion_test.sh).
install(FILES "${_ds_deploy}/completion/deltasend.bash"
        DESTINATION share/bash-completion/completions RENAME deltasend)
install(FILES "${_ds_deploy}/completion/deltarecvd.bash"
        DESTINATION share/bash-completion/completions RENAME deltarecvd)
# Man pages from docs/cli/ (with pandoc, when installed).
include(${CMAKE_CURRENT_LIST_DIR}/Manpages.cmake)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME deltasync)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "deltasync")
set(CPACK_PACKAGE_CONTACT "deltasync maintainers <deltasync@localhost>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "container image updates as deltas over thin links")
# The long description (CPack indents it and writes " ." for empty lines).
set(CPACK_PACKAGE_DESCRIPTION
    "deltasync keeps container images up to date on sites behind thin links
(satellite, cellular, metered) by shipping only what changed, and ends with
the same image, bit for bit, on the site.

deltasend (build host) sends an image from the local Docker or Podman engine;
deltarecvd (site, systemd service) receives it over mutual TLS, rebuilds and
verifies every layer and loads the image into the site's engine. Offline
bundles (deltasend bundle / deltarecvd apply) cover air-gapped sites.")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# /usr/bin, /usr/share/... (relative install destinations); /etc and /lib
# are absolute above.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Depends from the binaries' shared libraries (dpkg-shlibdeps, package
# dpkg-dev): always right for the libraries actually linked, with the
# versions this build needs. Our own libraries are static.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The scripts call deb-systemd-helper (init-system-helpers, always on Debian
# but not Essential).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "docker.io | podman")
# Stripped binaries: the package goes to sites over thin links (about 10x
# smaller than with RelWithDebInfo's debug information).
set(CPACK_STRIP_FILES ON)
# conffiles: CPack (3.25) does not mark /etc files itself; listed here, dpkg
# keeps an admin's edits on upgrade and removes the files only on purge.
set(_ds_conffiles "${CMAKE_CURRENT_BINARY_DIR}/deb-control/conffiles")
file(WRITE "${_ds_conffiles}" "/etc/deltasync/deltarecvd.conf\n/etc/deltasync/deltasend.conf\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${_ds_deploy}/debian/postinst;${_ds_deploy}/debian/prerm;${_ds_deploy}/debian/postrm;${_ds_conffiles}")
# Maintainer scripts 0755, other control files 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Directories CPack creates for absolute destinations get 0755.
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

include(CPack)
