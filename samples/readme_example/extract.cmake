# cmake -DREADME=<README.md> -DOUT=<file.cc> -P extract.cmake
# Writes the C++ code block found between the README's
# <!-- readme-example:begin --> and <!-- readme-example:end --> markers.
file(READ "${README}" text)
string(FIND "${text}" "<!-- readme-example:begin -->" begin)
string(FIND "${text}" "<!-- readme-example:end -->" end)
if(begin EQUAL -1 OR end EQUAL -1 OR end LESS begin)
  message(FATAL_ERROR "${README}: the readme-example markers are missing; "
                      "put them around the API example's ```cpp block")
endif()
math(EXPR length "${end} - ${begin}")
string(SUBSTRING "${text}" ${begin} ${length} block)
string(FIND "${block}" "```cpp\n" open)
string(FIND "${block}" "\n```" close REVERSE)
if(open EQUAL -1 OR close EQUAL -1 OR close LESS open)
  message(FATAL_ERROR "${README}: no ```cpp block between the readme-example markers")
endif()
math(EXPR open "${open} + 7")
math(EXPR length "${close} - ${open} + 1")
string(SUBSTRING "${block}" ${open} ${length} code)
set(code "// Extracted from ${README} by samples/readme_example/extract.cmake.\n${code}")
# Rewrite only on change, so an unrelated README edit recompiles nothing.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL code)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${code}")
