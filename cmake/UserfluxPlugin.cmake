# userflux_add_plugin(<target> SOURCES <files...> [LIBRARIES <libs...>] [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
# Builds a plugin shared library into lib/userflux/plugins (build and install trees alike), linked to the
# framework. The plugin's metadata JSON (id, kind, version, api_version) is embedded by Q_PLUGIN_METADATA.
# Test fixtures pass OUTPUT_DIRECTORY (a folder of their own) and NO_INSTALL.
function(userflux_add_plugin target)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/${USERFLUX_PLUGIN_SUBDIR}")
  endif()
  qt_add_plugin(${target} SHARED)
  target_sources(${target} PRIVATE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE Userflux::Framework ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}"
    INSTALL_RPATH "$ORIGIN/../..")
  if(NOT ARG_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION "${USERFLUX_PLUGIN_SUBDIR}")
  endif()
endfunction()
