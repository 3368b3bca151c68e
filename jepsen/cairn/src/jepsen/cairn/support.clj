(ns jepsen.cairn.support
  "Where things are on a node, and how nodes are named to Cairn. Every other
  namespace asks here, so that a port or a path is written once.

  Node n (the n-th of the test's :nodes, from 1) is Cairn member n: Cairn ids
  are positive integers, and the order of --nodes is the same on every run.
  cairnd wants IPv4 literals for its addresses (src/server.c parses them with
  uv_ip4_addr), so nodes are given to it by IP."
  (:require [clojure.string :as str]
            [jepsen.control.net :as cn]))

(def raft-port   "Raft traffic between members."   7101)
(def client-port "The native client protocol."     7001)
(def http-port   "The HTTP JSON API (docs/http.md)." 8001)

(def dir      "Everything of the test on a node." "/var/lib/cairn-jepsen")
(def data-dir "cairnd's --data-dir."              (str dir "/data"))
(def log-file "cairnd's stdout and stderr."        (str dir "/cairnd.log"))
(def pid-file "start-stop-daemon's pid file."      (str dir "/cairnd.pid"))
(def package-file
  "Where the .deb is uploaded before apt installs it."
  "/tmp/cairn-jepsen.deb")
(def binary "Where the package installs cairnd." "/usr/bin/cairnd")

(def key-prefix
  "Every key the workloads touch starts with this, so that a test never meets
  keys of another."
  "jepsen/")

(defn node-id
  "Cairn's member id of a node: its position in the test's nodes, from 1."
  [test node]
  (let [i (.indexOf ^java.util.List (vec (:nodes test)) node)]
    (when (neg? i)
      (throw (ex-info (str "unknown node " node) {:node node, :nodes (:nodes test)})))
    (inc i)))

(defn id-node
  "The node of a Cairn member id, or nil."
  [test id]
  (let [nodes (vec (:nodes test))]
    (when (and (integer? id) (<= 1 id (count nodes)))
      (nth nodes (dec id)))))

(defn ip
  "A node's IPv4 address, as the control node resolves it (memoized)."
  [node]
  (cn/ip node))

(defn member-address
  "The RAFT_HOST:PORT/CLIENT_HOST:PORT address of a member, as --initial-cluster
  and POST /v1/members want it."
  [node]
  (let [a (ip node)]
    (str a ":" raft-port "/" a ":" client-port)))

(defn initial-cluster
  "The --initial-cluster flag's value for the test's nodes:
  ID=RAFT_ADDR/CLIENT_ADDR,..."
  [test]
  (->> (:nodes test)
       (map (fn [node] (str (node-id test node) "=" (member-address node))))
       (str/join ",")))

(defn http-url
  "The base URL of a node's HTTP API."
  [node]
  (str "http://" (ip node) ":" http-port))
