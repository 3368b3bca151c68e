;; Checks the Jepsen project without Jepsen (its jars are on Clojars, out of
;; reach of the build machines), with Debian's clojure package:
;;
;;   clojure test/lint.clj PROJECT_DIR...
;;
;; 1. Every .clj file under PROJECT_DIR (project.clj, src/, test/) reads as
;;    Clojure: every form, with *read-eval* false (no #= evaluation), and
;;    ::alias/keywords resolved from the file's own ns form, so an alias the
;;    ns does not declare is an error. Errors name file:line:column.
;; 2. project.clj is one defproject: a name, a version string, a
;;    :dependencies vector of [symbol "version" ...] entries, jepsen among
;;    them at a released (non-SNAPSHOT) version, no SNAPSHOT anywhere, and a
;;    :main naming a namespace that has a file under src/.
;; 3. Every file under src/ and test/ declares the namespace its path names;
;;    every namespace a src/ file requires is the project's own (a file
;;    exists) or comes from Clojure, Java, or a declared dependency (the
;;    table below says which namespaces each dependency brings).
;; 4. Every --workload NAME and --nemesis NAMES in README.md's command lines
;;    (the lines that run `lein run`) is in the registries of src/jepsen/cairn.clj (workloads, faults,
;;    special-nemeses).
;;
;; This reads; it does not compile or resolve vars: that needs the jars.
;; Exit status 0 when everything holds in every directory given, 1
;; otherwise (each problem on stderr, a verdict per directory on stdout).
(ns lint
  (:require [clojure.java.io :as io]
            [clojure.string :as str])
  (:import (clojure.lang LineNumberingPushbackReader LispReader$Resolver)))

(def problems (atom []))
(defn problem! [& xs] (swap! problems conj (apply str xs)))

(def dependency-namespaces
  "Namespace prefixes each dependency brings (with what it pulls in itself).
  jepsen 0.3.11 brings Clojure's contrib libraries it depends on, Knossos,
  Elle, jepsen.history, dom-top, slingshot (clj-commons), potemkin."
  {'jepsen   ["jepsen." "knossos." "elle." "dom-top." "clj-commons.slingshot" "slingshot."
              "potemkin" "clojure.tools.logging" "clojure.tools.cli" "clj-time." "fipp."
              "tesser." "gnuplot." "hiccup." "bifurcan" "multiset."]
   'cheshire ["cheshire."]})

(defn clj-files [dir]
  (->> (file-seq (io/file dir))
       (filter #(and (.isFile %) (str/ends-with? (.getName %) ".clj")))
       (remove #(str/includes? (.getPath %) "/target/"))
       (sort-by #(.getPath %))))

(defn aliases-of
  "Alias -> namespace from an ns form's :require clauses, prefix lists
  included: [jepsen [checker :as checker]] gives checker -> jepsen.checker."
  [ns-form]
  (let [libspec (fn libspec [prefix spec]
                  (cond (symbol? spec) []
                        (vector? spec)
                        (let [[lib & more] spec
                              full (symbol (str (when prefix (str prefix ".")) lib))]
                          (if (and (seq more) (not (keyword? (first more))))
                            (mapcat (partial libspec full) more)
                            (let [opts (apply hash-map (if (odd? (count more)) (butlast more) more))]
                              (if-let [a (:as opts)] [[a full]] []))))
                        :else []))]
    (->> (rest ns-form)
         (filter #(and (seq? %) (#{:require :require-macros} (first %))))
         (mapcat rest)
         (mapcat (partial libspec nil))
         (into {}))))

(defn required-namespaces
  "Every namespace an ns form requires or uses."
  [ns-form]
  (let [libspec (fn libspec [prefix spec]
                  (cond (symbol? spec) [(symbol (str (when prefix (str prefix ".")) spec))]
                        (vector? spec)
                        (let [[lib & more] spec
                              full (symbol (str (when prefix (str prefix ".")) lib))]
                          (if (and (seq more) (not (keyword? (first more))))
                            (mapcat (partial libspec full) more)
                            [full]))
                        :else []))]
    (->> (rest ns-form)
         (filter #(and (seq? %) (#{:require :use} (first %))))
         (mapcat rest)
         (mapcat (partial libspec nil)))))

(defn resolver
  "A reader resolver for a file whose ns is ns-name with these aliases."
  [ns-name aliases]
  (reify LispReader$Resolver
    (currentNS [_] ns-name)
    (resolveClass [_ sym] sym)
    (resolveAlias [_ sym] (get aliases sym))
    (resolveVar [_ sym] (symbol (str ns-name) (str sym)))))

(defn read-all
  "Every form of a file, or nil after reporting a problem. The first form
  is read first, so that its aliases are known for the rest."
  [^java.io.File f]
  (let [text (slurp f)
        rdr  (LineNumberingPushbackReader. (java.io.StringReader. text))
        eof  (Object.)
        read1 (fn [res]
                (binding [*read-eval* false
                          *reader-resolver* res]
                  (read {:eof eof, :read-cond :allow} rdr)))]
    (try
      (let [first-form (read1 (resolver 'user {}))
            [nsn aliases] (if (and (seq? first-form) (= 'ns (first first-form)))
                            [(second first-form) (aliases-of first-form)]
                            ['user {}])
            res (resolver nsn aliases)]
        (loop [forms (if (identical? eof first-form) [] [first-form])]
          (let [x (read1 res)]
            (if (identical? eof x) forms (recur (conj forms x))))))
      (catch Exception e
        (let [d (ex-data e)
              line (or (:clojure.error/line d) (.getLineNumber rdr))
              col  (or (:clojure.error/column d) (.getColumnNumber rdr))]
          (problem! (.getPath f) ":" line ":" col ": does not read as Clojure: "
                    (.getMessage (or (.getCause e) e)))
          nil)))))

(defn ns-file
  "The file under root that defines namespace ns."
  [root ns]
  (io/file root (str (-> (str ns) (str/replace "-" "_") (str/replace "." "/")) ".clj")))

(defn check-project
  [dir parsed]
  (let [f     (io/file dir "project.clj")
        forms (get parsed (.getPath f))
        [dp pname version & kvs] (first forms)
        opts  (when (even? (count kvs)) (apply hash-map kvs))
        deps  (:dependencies opts)]
    (cond
      (not (.isFile f)) (problem! f ": missing")
      (nil? forms) nil
      (not= 1 (count forms)) (problem! f ": expected one form, found " (count forms))
      (not= 'defproject dp) (problem! f ": not a defproject")
      (not (symbol? pname)) (problem! f ": the project's name is not a symbol")
      (not (string? version)) (problem! f ": the project's version is not a string")
      (nil? opts) (problem! f ": the options after the version are not key-value pairs")
      :else
      (do
        (when-not (vector? deps) (problem! f ": :dependencies is not a vector"))
        (doseq [d deps]
          (when-not (and (vector? d) (symbol? (first d)) (string? (second d))
                         (even? (count (drop 2 d))))
            (problem! f ": dependency " (pr-str d) " is not [symbol \"version\" & options]")))
        (let [vs (into {} (map (fn [[s v]] [s v]) (filter vector? deps)))]
          (cond (not (contains? vs 'jepsen)) (problem! f ": jepsen is not a dependency")
                (not (re-matches #"\d+\.\d+\.\d+" (str (vs 'jepsen))))
                (problem! f ": jepsen's version " (pr-str (vs 'jepsen))
                          " is not a released version (x.y.z)"))
          (doseq [[s v] vs :when (str/includes? (str v) "SNAPSHOT")]
            (problem! f ": " s " " v " is a SNAPSHOT")))
        (let [m (:main opts)]
          (cond (not (symbol? m)) (problem! f ": :main is not a namespace symbol")
                (not (.isFile (ns-file (io/file dir "src") m)))
                (problem! f ": :main " m " has no file " (ns-file (io/file dir "src") m))))))
    (when (vector? deps) (set (map first (filter vector? deps))))))

(defn check-namespaces
  [dir parsed deps]
  (doseq [sub ["src" "test"]
          f   (clj-files (io/file dir sub))
          :let [forms (get parsed (.getPath f))
                nsf   (first forms)]
          :when (and forms (not (str/ends-with? (.getName f) "lint.clj"))
                     (not (str/ends-with? (.getName f) "run_unit.clj")))]
    (if-not (and (seq? nsf) (= 'ns (first nsf)))
      (problem! f ": does not begin with an ns form")
      (let [nsn (second nsf)]
        (when-not (= (.getCanonicalPath f) (.getCanonicalPath (ns-file (io/file dir sub) nsn)))
          (problem! f ": declares namespace " nsn ", whose file would be "
                    (ns-file (io/file dir sub) nsn)))
        (doseq [r (required-namespaces nsf)
                :let [rs (str r)]]
          (cond
            (or (str/starts-with? rs "clojure.") (str/starts-with? rs "java.")) nil
            (.isFile (ns-file (io/file dir "src") r)) nil
            (and (= sub "test") (.isFile (ns-file (io/file dir "test") r))) nil
            (str/starts-with? rs "jepsen.cairn")
            (problem! f ": requires " r ", which has no file " (ns-file (io/file dir "src") r))
            :else
            (let [from (keep (fn [[dep prefixes]]
                               (when (some #(str/starts-with? rs %) prefixes) dep))
                             dependency-namespaces)]
              (cond (empty? from)
                    (problem! f ": requires " r ", which no declared dependency provides")
                    (not-any? deps from)
                    (problem! f ": requires " r ", from " (first from)
                              ", which project.clj does not declare")))))))))

(defn registry
  "The keys of a def'd map or the members of a def'd set in cairn.clj."
  [forms name]
  (some (fn [form]
          (when (and (seq? form) (= 'def (first form)) (= name (second form)))
            (let [v (last form)]
              (set (map clojure.core/name (if (map? v) (keys v) v))))))
        forms))

(defn check-readme
  [dir parsed]
  (let [main    (get parsed (.getPath (io/file dir "src" "jepsen" "cairn.clj")))
        wls     (registry main 'workloads)
        faults  (registry main 'faults)
        special (registry main 'special-nemeses)
        readme  (io/file dir "README.md")
        lines   (when (.isFile readme) (str/split-lines (slurp readme)))
        seen    (atom 0)]
    (when-not (and wls faults special)
      (problem! "src/jepsen/cairn.clj: no workloads map, faults set or special-nemeses map"))
    (when-not lines (problem! readme ": missing"))
    (doseq [[i line] (map-indexed vector lines)
            :when (str/includes? line "lein run")]
      (doseq [[_ w] (re-seq #"(?:--workload|-w)[ =]([A-Za-z0-9_-]+)" line)]
        (swap! seen inc)
        (when-not (contains? wls w)
          (problem! readme ":" (inc i) ": workload " w " is not in cairn.clj's workloads "
                    (sort wls))))
      (doseq [[_ ns] (re-seq #"--nemesis[ =]([A-Za-z0-9_,-]+)" line)
              n (str/split ns #",")]
        (swap! seen inc)
        (when-not (or (contains? faults n) (contains? special n))
          (problem! readme ":" (inc i) ": nemesis " n " is not in cairn.clj's faults "
                    (sort faults) " or special-nemeses " (sort special)))))
    (when (and lines (zero? @seen))
      (problem! readme ": no --workload or --nemesis command line to check"))))

(defn lint-dir
  "Checks one project; returns its problems."
  [dir]
  (reset! problems [])
  (let [files  (concat [(io/file dir "project.clj")]
                       (clj-files (io/file dir "src"))
                       (clj-files (io/file dir "test")))
        parsed (into {} (keep (fn [f] (when (.isFile f)
                                        (when-let [forms (read-all f)] [(.getPath f) forms])))
                              files))
        deps   (check-project dir parsed)]
    (check-namespaces dir parsed (or deps #{}))
    (check-readme dir parsed)
    [(count parsed) @problems]))

(defn -main
  "Checks each project directory given; prints each problem on stderr and
  one verdict line per directory on stdout."
  [& dirs]
  (let [bad (doall
              (for [dir dirs
                    :let [[n ps] (lint-dir dir)]]
                (do (binding [*out* *err*] (doseq [p ps] (println p)))
                    (if (seq ps)
                      (println (str "lint: " dir ": " (count ps) " problem(s)"))
                      (println (str "lint: " dir ": ok (" n " files read; project.clj, "
                                    "namespaces and README names check out)")))
                    (seq ps))))]
    (flush)
    (System/exit (if (some identity bad) 1 0))))

(apply -main *command-line-args*)
