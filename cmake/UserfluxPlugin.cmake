# userflux_add_plugin(<target> SOURCES <files...> [LIBRARIES <libs...>])
# Builds a plugin shared library into lib/userflux/plugins (build and install trees alike), linked to the
# framework. The plugin's metadata JSON (id, kind, version, api_version) is embedded by Q_PLUGIN_METADATA.
function(userflux_add_plugin target)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  qt_add_plugin(${target} SHARED)
  target_sources(${target} PRIVATE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE Userflux::Framework ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/${USERFLUX_PLUGIN_SUBDIR}"
    INSTALL_RPATH "$ORIGIN/../..")
  install(TARGETS ${target} LIBRARY DESTINATION "${USERFLUX_PLUGIN_SUBDIR}")
endfunction()
