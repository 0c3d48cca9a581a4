// The single translation unit that compiles Asio (and its SSL support) for the project.
#include <asio/impl/src.hpp>
#include <asio/ssl/impl/src.hpp>
