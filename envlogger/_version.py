__version__ = '0.1.0'

# Version of the on-disk layout (envlogger_log.json, indexes, record layout).
# Readers refuse logs with a newer major version than they know.
FORMAT_VERSION = 1
