// Command ginsvc is the gin service of the route instrumentation's tests:
// it prints "http ADDR" and serves until killed.
package main

import (
	"fmt"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New() // no Recovery: a panic reaches net/http
	r.GET("/users/:id", func(c *gin.Context) { c.String(200, "user %s", c.Param("id")) })
	r.POST("/users/:id", func(c *gin.Context) { c.String(201, "created %s", c.Param("id")) })
	r.GET("/fail/:id", func(c *gin.Context) { c.String(500, "failed %s", c.Param("id")) })
	r.GET("/panic/:id", func(c *gin.Context) { panic("handler panics " + c.Param("id")) })
	api := r.Group("/api/v1")
	api.GET("/items/:id", func(c *gin.Context) { c.String(200, "item %s", c.Param("id")) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println("http", l.Addr())
	panic(http.Serve(l, r))
}
