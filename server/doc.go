// Package server is the connection lifecycle every Posthouse listener
// shares.
package server
