# Man pages from the command pages docs/cli/*.md, with pandoc (Debian
# package "pandoc"), when it is installed; without it there are none and the
# package ships without them (a STATUS line says so).
#
#   cmake --build build --target man     -> build/man/deltasend.1.gz, ...
#   man -l build/man/deltasend.1.gz
#
# docs/cli/man.lua turns the pages' conventions (written for the web first)
# into man's: title, capitalised sections, option lists as tagged
# paragraphs, links as text. Installed to share/man/man1 (deltasend*) and
# share/man/man8 (deltarecvd*: the site's service and admin command).

find_program(PANDOC_EXECUTABLE pandoc)
find_program(GZIP_EXECUTABLE gzip)

set(_ds_man_pages
    deltasend:1 deltasend-bundle:1 deltasend-diff:1 deltasend-diff-image:1 deltasend-status:1
    deltasend-publish:1 deltarecvd:8 deltarecvd-apply:8 deltarecvd-pull:8)

if(PANDOC_EXECUTABLE AND GZIP_EXECUTABLE)
  set(_ds_man_dir "${CMAKE_BINARY_DIR}/man")
  set(_ds_man_outputs)
  foreach(_ds_page IN LISTS _ds_man_pages)
    string(REPLACE ":" ";" _ds_parts "${_ds_page}")
    list(GET _ds_parts 0 _ds_name)
    list(GET _ds_parts 1 _ds_section)
    set(_ds_source "${PROJECT_SOURCE_DIR}/docs/cli/${_ds_name}.md")
    set(_ds_page_file "${_ds_man_dir}/${_ds_name}.${_ds_section}")
    add_custom_command(
      OUTPUT "${_ds_page_file}.gz"
      COMMAND "${CMAKE_COMMAND}" -E make_directory "${_ds_man_dir}"
      # -smart: "--to" stays two hyphens. No date: the same page from the
      # same source (reproducible packages).
      COMMAND "${PANDOC_EXECUTABLE}" --from markdown-smart --to man --standalone
              --shift-heading-level-by=-1
              --lua-filter "${PROJECT_SOURCE_DIR}/docs/cli/man.lua"
              --metadata "section=${_ds_section}"
              --metadata "footer=deltasync ${PROJECT_VERSION}"
              --metadata "header=deltasync manual"
              --output "${_ds_page_file}" "${_ds_source}"
      COMMAND "${GZIP_EXECUTABLE}" -9nf "${_ds_page_file}"
      DEPENDS "${_ds_source}" "${PROJECT_SOURCE_DIR}/docs/cli/man.lua"
      COMMENT "Man page ${_ds_name}(${_ds_section})"
      VERBATIM)
    list(APPEND _ds_man_outputs "${_ds_page_file}.gz")
    install(FILES "${_ds_page_file}.gz" DESTINATION "share/man/man${_ds_section}")
  endforeach()
  add_custom_target(man ALL DEPENDS ${_ds_man_outputs})
  # The package is built with `cmake --build build --target deltasend
  # deltarecvd && cpack` (docs/deploy.md, tests/deploy/package_test.sh):
  # those targets make the pages too, so that cpack finds them.
  add_dependencies(deltasend man)
  add_dependencies(deltarecvd man)
else()
  message(STATUS "pandoc (or gzip) not found: no man pages (apt-get install pandoc to make them)")
endif()
