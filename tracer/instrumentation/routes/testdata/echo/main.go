// Command echosvc is the echo v4 service of the route instrumentation's
// tests: it prints "http ADDR" and serves until killed.
package main

import (
	"fmt"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"
)

func main() {
	e := echo.New()
	e.HideBanner = true
	e.GET("/users/:id", func(c echo.Context) error { return c.String(200, "user "+c.Param("id")) })
	e.POST("/users/:id", func(c echo.Context) error { return c.String(201, "created "+c.Param("id")) })
	e.GET("/fail/:id", func(c echo.Context) error { return c.String(500, "failed "+c.Param("id")) })
	api := e.Group("/api/v1")
	api.GET("/items/:id", func(c echo.Context) error { return c.String(200, "item "+c.Param("id")) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println("http", l.Addr())
	panic(http.Serve(l, e))
}
