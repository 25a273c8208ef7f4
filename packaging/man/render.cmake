cmake_minimum_required(VERSION 3.25)
# render.cmake - build the manual pages (cmake -P): @VERSION@ in each page, @KEYS@ in
# referee.yaml(5) from the key table of packaging/CONFIG.md (itself rendered from
# core/cfg_keys.c, checked by core_test_cfg), then gzip -9n as Debian wants them.
# -D SRC=<packaging/man> -D CONFIG_MD=<CONFIG.md> -D CHANGELOG=<debian/changelog> -D OUT=<dir> -D VERSION=<x.y.z>
file(MAKE_DIRECTORY ${OUT})

# troff text of one markdown cell: `code` in bold, backslashes escaped
function(md_to_troff in outvar)
  string(REPLACE "\\" "\\e" s "${in}")
  string(REGEX REPLACE "`([^`]*)`" "\\\\fB\\1\\\\fR" s "${s}")
  string(REPLACE "-" "\\-" s "${s}")
  set(${outvar} "${s}" PARENT_SCOPE)
endfunction()

file(STRINGS ${CONFIG_MD} rows ENCODING UTF-8 REGEX "^\\| `")
set(keys "")
set(n 0)
foreach(row IN LISTS rows)
  # | `key` | type | default | meaning |
  string(REGEX MATCH "^\\| `([^`]+)` \\| (.*) \\| (.*) \\| (.*) \\|$" m "${row}")
  if(NOT m)
    message(FATAL_ERROR "CONFIG.md: cannot read the table row: ${row}")
  endif()
  set(key "${CMAKE_MATCH_1}")
  md_to_troff("${CMAKE_MATCH_2}" type)
  md_to_troff("${CMAKE_MATCH_3}" def)
  md_to_troff("${CMAKE_MATCH_4}" meaning)
  string(APPEND keys ".TP\n.B ${key}\n${meaning}.\n.br\nType: ${type}; default: ${def}.\n")
  math(EXPR n "${n} + 1")
endforeach()
if(n LESS 10)
  message(FATAL_ERROR "CONFIG.md: only ${n} keys found")
endif()

foreach(page referee.8 referee-admin.8 referee.yaml.5)
  if(EXISTS ${SRC}/${page}.in)
    file(READ ${SRC}/${page}.in text)
  else()
    file(READ ${SRC}/${page} text)
  endif()
  string(REPLACE "@VERSION@" "${VERSION}" text "${text}")
  string(REPLACE "@KEYS@\n" "${keys}" text "${text}")
  file(WRITE ${OUT}/${page} "${text}")
  execute_process(COMMAND gzip -9nf ${OUT}/${page} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip ${OUT}/${page} failed")
  endif()
endforeach()

execute_process(COMMAND gzip -9nc INPUT_FILE ${CHANGELOG} OUTPUT_FILE ${OUT}/changelog.gz RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip ${CHANGELOG} failed")
endif()
