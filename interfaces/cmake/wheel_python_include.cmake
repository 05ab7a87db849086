# Included after project() (CMAKE_PROJECT_INCLUDE) when an interface package is built
# against the ROS 2 PyPI wheels instead of a ROS distro.
#
# Why: the wheels' exported CMake targets (e.g. geometry_msgs::..._rosidl_generator_py) name
# the Python include folder of the machine that built the wheels
# (/opt/python/cp311-cp311/include/python3.11 and numpy's include folder below it). CMake's
# generate step rejects an imported target whose include folder does not exist. At the end of
# the configure step this replaces those folders, in every imported target, by this
# interpreter's (Python3_INCLUDE_DIRS and Python3_NumPy_INCLUDE_DIRS, found by the rosidl
# Python generator), without touching the machine or the installed wheels.

function(_wheel_python_include_fix)
  if(NOT Python3_INCLUDE_DIRS)
    return()
  endif()
  get_directory_property(imported_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(target IN LISTS imported_targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(fixed "")
    set(changed FALSE)
    foreach(dir IN LISTS dirs)
      if(NOT dir MATCHES "^/opt/python/cp[0-9]+-cp[0-9]+/" OR EXISTS "${dir}")
        list(APPEND fixed "${dir}")
      elseif(dir MATCHES "/include/python[0-9.]+$")
        list(APPEND fixed ${Python3_INCLUDE_DIRS})
        set(changed TRUE)
      elseif(dir MATCHES "/numpy/.*include$" AND Python3_NumPy_INCLUDE_DIRS)
        list(APPEND fixed ${Python3_NumPy_INCLUDE_DIRS})
        set(changed TRUE)
      else()
        message(STATUS "${target}: dropped the wheel builder's include folder ${dir}")
        set(changed TRUE)
      endif()
    endforeach()
    if(changed)
      list(REMOVE_DUPLICATES fixed)
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _wheel_python_include_fix)
