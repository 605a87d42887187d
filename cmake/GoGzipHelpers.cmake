# deltasync-gzip helpers (common/codec/gzip-helper/main.go): one per Go
# toolchain, since Go's deflate output differs between releases and a site
# can rebuild a BuildKit blob byte for byte only with the release that wrote
# it (docs/engines.md). DELTASYNC_GO_TOOLCHAINS lists `go` binaries (default:
# the `go` on PATH, Debian 12's golang-go 1.19); each gives
#   <build>/libexec/deltasync/deltasync-gzip-<go version>
# installed to /usr/libexec/deltasync/. With no toolchain the product still
# works: on Docker's containerd store the site then keeps the content
# identity (config digest and diff_ids) and reports that the Id differs.
set(DELTASYNC_GO_TOOLCHAINS "" CACHE STRING "go binaries to build deltasync-gzip helpers with")
set(_ds_go_list "${DELTASYNC_GO_TOOLCHAINS}")
if(NOT _ds_go_list)
  find_program(DELTASYNC_DEFAULT_GO NAMES go)
  if(DELTASYNC_DEFAULT_GO)
    set(_ds_go_list "${DELTASYNC_DEFAULT_GO}")
  endif()
endif()

set(DELTASYNC_HELPER_DIR "${CMAKE_BINARY_DIR}/libexec/deltasync")
set(_ds_helper_src "${PROJECT_SOURCE_DIR}/common/codec/gzip-helper/main.go")
set(_ds_helpers "")
foreach(_ds_go IN LISTS _ds_go_list)
  execute_process(COMMAND "${_ds_go}" env GOVERSION
                  OUTPUT_VARIABLE _ds_go_version OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _ds_go_rc ERROR_QUIET)
  if(NOT _ds_go_rc EQUAL 0 OR NOT _ds_go_version MATCHES "^go[0-9]")
    message(FATAL_ERROR "DELTASYNC_GO_TOOLCHAINS: ${_ds_go} is not a working go binary")
  endif()
  if("${_ds_go_version}" IN_LIST _ds_seen_versions)
    continue()
  endif()
  list(APPEND _ds_seen_versions "${_ds_go_version}")
  set(_ds_out "${DELTASYNC_HELPER_DIR}/deltasync-gzip-${_ds_go_version}")
  # GOROOT is left to the toolchain (it finds its own from its path, also
  # inside another root); caches stay in the build tree; no network.
  add_custom_command(
    OUTPUT "${_ds_out}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${DELTASYNC_HELPER_DIR}"
    COMMAND ${CMAKE_COMMAND} -E env "GOCACHE=${CMAKE_BINARY_DIR}/go-cache/${_ds_go_version}"
            "GOPATH=${CMAKE_BINARY_DIR}/go-path" GOFLAGS= CGO_ENABLED=0
            GOPROXY=off GOTOOLCHAIN=local
            "${_ds_go}" build -trimpath -o "${_ds_out}" "${_ds_helper_src}"
    DEPENDS "${_ds_helper_src}"
    COMMENT "Building deltasync-gzip with ${_ds_go_version}"
    VERBATIM)
  list(APPEND _ds_helpers "${_ds_out}")
  install(PROGRAMS "${_ds_out}" DESTINATION libexec/deltasync)
endforeach()
add_custom_target(deltasync_gzip_helpers ALL DEPENDS ${_ds_helpers})
if(_ds_helpers)
  message(STATUS "deltasync-gzip helpers: ${_ds_seen_versions}")
else()
  message(STATUS "deltasync-gzip helpers: none (no go toolchain): the containerd store keeps the content identity only")
endif()
